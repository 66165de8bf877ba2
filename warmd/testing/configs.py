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


def warm_up_config(log: Path, origin_url: str, redis_address: str, *, budget: int,
                   batch_requests: int) -> str:
    """The sections a test daemon needs to warm up end to end: the origin as an http cache,
    a redis cache, one combined log as its source, fast shipping and a planner that plans
    on events only (`[planner] interval_ms = 0`)."""
    return f"""
[caches.api]
kind = "http"
url = "{origin_url}"

[caches.redis]
kind = "redis"
address = "{redis_address}"

[sources.web]
paths = ["{log}"]
format = "combined"

[analysis]
ship_interval_ms = 300
poll_interval_ms = 100

[planner]
interval_ms = 0
budget = {budget}
batch_requests = {batch_requests}
min_interval_ms = 1000
watch_interval_ms = 200
effect_window_ms = 1000
"""
