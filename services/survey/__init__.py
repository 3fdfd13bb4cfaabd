"""Survey service: residents' satisfaction surveys (questionnaires, sampling, results)."""
