"""Adapters that put abathur-memory behind the memory interfaces of agent frameworks.

Each is an optional extra and imports its framework only when it is imported itself:

- :mod:`abathur_memory.adapters.openai_agents` (``[openai-agents]``): a ``Session``;
- :mod:`abathur_memory.adapters.langgraph` (``[langgraph]``): a ``BaseStore``;
- :mod:`abathur_memory.adapters.adk` (``[adk]``): a session service and a memory service;
- :mod:`abathur_memory.adapters.anthropic` (``[anthropic]``): a memory tool backend.

They are built on the Python API (:mod:`abathur_memory.api`), so they share its
guarantees: versions, compare-and-set, the namespace policy, audit and search.
"""
