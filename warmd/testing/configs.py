"""Config files for tests: a one-node base config and a writer that adds the secret file.

Tests append the sections they exercise to `ONE_NODE` (more `[peers.N]`, `[caches.X]`,
`[sources.X]` ...) and write it with `write_config`, which also writes the cluster secret
with the private mode the loader insists on.
"""

from __future__ import annotations

import os
from pathlib import Path

TEST_SECRET = b"0123456789abcdef0123456789abcdef\n"
ONE_NODE = """
[node]
id = 1
listen = "127.0.0.1:7001"
data_dir = "data"

[cluster]
id = "test"
secret_file = "cluster.secret"

[peers.1]
address = "127.0.0.1:7001"
"""


def write_config(directory: Path, text: str, *, secret_mode: int = 0o600) -> Path:
    """Write `text` as `directory/warmd.toml` and the secret file (with `secret_mode`) beside
    it; returns the config's path."""
    secret = directory / "cluster.secret"
    secret.write_bytes(TEST_SECRET)
    os.chmod(secret, secret_mode)
    path = directory / "warmd.toml"
    path.write_text(text)
    return path
