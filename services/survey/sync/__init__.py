"""Published satisfaction results going up the tiers through shared.sync."""
