"""Command-line entry points: warmd and warmctl."""
