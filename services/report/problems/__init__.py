"""Report service: problems domain."""
