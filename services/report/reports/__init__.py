"""Report service: reports domain."""
