"""Problems, tasks, projects and final reports going up the tiers through shared.sync."""
