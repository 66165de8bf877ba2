"""leader wing."""
