"""execute wing."""
