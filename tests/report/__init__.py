"""Report service tests."""
