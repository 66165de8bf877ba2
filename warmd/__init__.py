"""warmd: a distributed cache warm-up daemon coordinated by its own Raft."""

__version__ = "0.1.0"
