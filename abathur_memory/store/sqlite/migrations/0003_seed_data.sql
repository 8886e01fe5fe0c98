-- 0003: seed 000 §3.1 application memories, inserted once.
-- A key that already has a version (an upgraded database) is left as it is.

INSERT INTO memory_entries (namespace, key, value, memory_type, created_by, updated_by)
SELECT 'app:abathur:agent_instructions', 'default_workflow',
       json('{"steps": ["Read and analyze task requirements", "Retrieve relevant context from memory", "Execute task with best practices", "Update session state and memory", "Log audit trail"], "error_handling": "Always provide detailed error messages", "logging": "Comprehensive audit logging enabled"}'),
       'procedural', 'system', 'system'
WHERE NOT EXISTS (SELECT 1 FROM memory_entries
                  WHERE namespace = 'app:abathur:agent_instructions' AND key = 'default_workflow');

INSERT INTO memory_entries (namespace, key, value, memory_type, created_by, updated_by)
SELECT 'app:abathur:defaults', 'user_preference_template',
       json('{"communication_style": "balanced", "technical_level": "intermediate", "response_length": "moderate", "code_comments": true}'),
       'semantic', 'system', 'system'
WHERE NOT EXISTS (SELECT 1 FROM memory_entries
                  WHERE namespace = 'app:abathur:defaults' AND key = 'user_preference_template');

INSERT INTO memory_entries (namespace, key, value, memory_type, created_by, updated_by)
SELECT 'app:abathur:config', 'memory_lifecycle_policies',
       json('{"episodic_ttl_days": 90, "consolidation_frequency": "weekly", "archival_after_days": 365}'),
       'procedural', 'system', 'system'
WHERE NOT EXISTS (SELECT 1 FROM memory_entries
                  WHERE namespace = 'app:abathur:config' AND key = 'memory_lifecycle_policies');
