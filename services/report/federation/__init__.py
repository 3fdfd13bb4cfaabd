"""Report service: federation domain."""
