"""Shipped test kit: simulator, network, checkers, fakes."""
