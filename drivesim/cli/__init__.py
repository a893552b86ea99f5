"""Command-line interface (`drivesim --help`)."""
