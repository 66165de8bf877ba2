"""Extension protocols, entry-point loading, built-in readiness checks and loaders."""
