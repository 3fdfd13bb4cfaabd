"""Indicator service: indicator systems, regions, values, evaluation, approval, dashboards."""
