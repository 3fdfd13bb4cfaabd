"""Report service: tasks domain."""
