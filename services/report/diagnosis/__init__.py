"""Report service: diagnosis domain."""
