"""node wing."""
