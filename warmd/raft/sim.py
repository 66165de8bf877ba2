"""`python -m warmd.raft.sim`: the seeded Raft simulator (it lives in warmd.testing)."""

from __future__ import annotations

if __name__ == "__main__":
    from warmd.testing.sim import main

    raise SystemExit(main())
