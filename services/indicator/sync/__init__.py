"""Federation of the indicator service: what it records, how received changes apply."""
