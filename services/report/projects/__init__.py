"""Report service: projects domain."""
