"""Node composition and the `checkup` command line."""
