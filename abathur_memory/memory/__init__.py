"""Services: memories, sessions, tasks, agents, checkpoints, audit and namespace policy."""
