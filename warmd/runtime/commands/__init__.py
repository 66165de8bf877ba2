"""commands wing."""
