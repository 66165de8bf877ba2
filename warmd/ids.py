"""Identifier bounds shared by the config, the admin commands and the replicated commands."""

from __future__ import annotations

# Node ids travel in replicated commands as msgpack int64, so none may exceed this.
NODE_ID_MAX = 2**63 - 1
