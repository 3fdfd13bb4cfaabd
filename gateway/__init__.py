"""Gateway: identity, region-scoped authorization, routing, limits, audit, node links."""
