"""The config sections about work rather than identity: sources, analysis, executor, planner.

`config.py` assembles the whole `Config`; these sections live here to keep both modules small.
Each reader takes its `Section` and raises `ConfigKeyError` naming the dotted key, like the
rest of the config. The dataclasses are re-exported by `warmd.config`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from warmd.analysis.formats import JSON_FIELDS
from warmd.config_table import Address, ConfigKeyError, Section, read_private_file

SOURCE_FORMATS = ("combined", "common", "json", "regex", "auto")
# `path` is the name docs/configuration.md has always used for the request target.
TARGET_ALIASES = ("target", "request", "path")
WATCHABLE_KINDS = ("redis", "redis-cluster", "memcached")


@dataclass(frozen=True, slots=True)
class SourceConfig:
    name: str
    paths: tuple[str, ...]  # files or glob patterns, resolved against the config directory
    format: str  # one of SOURCE_FORMATS; "auto" detects combined or JSON from the first lines
    pattern: str | None  # regex format: a pattern with named groups
    fields: tuple[tuple[str, str], ...]  # json format: our field name -> the log's field name


@dataclass(frozen=True, slots=True)
class ExecutorConfig:
    """This node's task executor; every node runs one unless `enabled = false` (DESIGN.md §1).

    capacity: tasks at once (0: the node is never assigned any); lease_ms: silence after which
    the leader declares the node dead and reassigns its tasks; heartbeat_interval_ms: well
    under the lease; batch_keys: keys per write and per progress checkpoint; keys_per_second:
    a rate cap per task (0: none); prefetch: tasks per slot held assigned ahead of the free
    slots, so a slot never waits for the commits between two tasks, or "auto" (as many as
    cover the measured refill latency over the task write time, 1..8).
    """

    enabled: bool = True
    capacity: int = 4
    lease_ms: int = 3000
    heartbeat_interval_ms: int = 500
    batch_keys: int = 10
    keys_per_second: int = 0
    prefetch: int | str = "auto"  # an integer, or "auto"


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """`[metrics]`: /metrics is always on the `[web]` listener; `listen` adds a listener that
    serves only /metrics (None: none), e.g. on an address only Prometheus reaches.
    annotations_url: Grafana's /api/annotations, where the leader posts each finished
    warm-up (None: off); annotations_token: read from `annotations_token_file`."""

    listen: Address | None = None
    annotations_url: str | None = None
    annotations_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class AnalysisConfig:
    """How this node tails its `[sources.*]` and ships their summaries through Raft."""

    ship_interval_ms: int = 10_000  # a source's summary ships at most this often
    poll_interval_ms: int = 1_000  # how often the logs are polled
    from_start: bool = True  # read what the files already hold at first start
    ship_interval_max_ms: int = 3_600_000  # and at least this often while new lines wait
    ship_change_ratio: float = 0.05  # ship at the short interval once this share is new


@dataclass(frozen=True, slots=True)
class PlannerConfig:
    """What the leader plans, when, and against which caches (docs/configuration.md)."""

    enabled: bool = True
    interval_ms: int = 600_000  # scheduled plan (0: none)
    budget: int = 1000  # requests per plan (zero-config)
    batch_requests: int = 100  # requests per task
    horizon_ms: int = 21_600_000
    task_deadline_ms: int = 3_600_000
    target: str = ""  # zero-config target cache; "" = the only http cache
    watch: tuple[str, ...] = ()  # caches watched for flush/restart; () = every redis,
    # redis-cluster and memcached cache
    watch_interval_ms: int = 1000
    effect_window_ms: int = 60_000
    min_interval_ms: int = 5_000  # two event-triggered plans at least this far apart


def metrics_config(section: Section) -> MetricsConfig:
    """`[metrics]`: every key optional."""
    section.expect_keys("listen", "annotations_url", "annotations_token_file")
    url = section.url("annotations_url") if "annotations_url" in section.table else None
    token_file = section.file_path("annotations_token_file", None)
    token = None
    if token_file is not None:
        token = read_private_file(token_file, section.key("annotations_token_file")).decode(
            "utf-8", errors="replace").strip()
    return MetricsConfig(listen=section.address("listen", None, allow_port_zero=True),
                         annotations_url=url, annotations_token=token)


def executor_config(section: Section) -> ExecutorConfig:
    """`[executor]`: the heartbeat must be shorter than the lease it renews."""
    section.expect_keys("enabled", "capacity", "lease_ms", "heartbeat_interval_ms",
                        "batch_keys", "keys_per_second", "prefetch")
    default = ExecutorConfig()
    lease_ms = section.integer("lease_ms", default.lease_ms, minimum=100)
    heartbeat_ms = section.integer("heartbeat_interval_ms", default.heartbeat_interval_ms,
                                   minimum=10)
    if heartbeat_ms >= lease_ms:
        raise ConfigKeyError(section.key("heartbeat_interval_ms"),
                             f"{heartbeat_ms} must be shorter than executor.lease_ms ({lease_ms})")
    return ExecutorConfig(
        enabled=section.boolean("enabled", default.enabled),
        capacity=section.integer("capacity", default.capacity, minimum=0),
        lease_ms=lease_ms,
        heartbeat_interval_ms=heartbeat_ms,
        batch_keys=section.integer("batch_keys", default.batch_keys, minimum=1),
        keys_per_second=section.integer("keys_per_second", default.keys_per_second, minimum=0),
        prefetch=_prefetch(section),
    )


def _prefetch(section: Section) -> int | str:
    """`prefetch`: "auto" (the default), or a fixed number of tasks per slot (0..64)."""
    value = section.table.get("prefetch", "auto")
    if value == "auto":
        return "auto"
    if isinstance(value, str):
        raise ConfigKeyError(section.key("prefetch"), f'expected an integer or "auto", got {value!r}')
    return section.integer("prefetch", minimum=0, maximum=64)


def source_config(section: Section) -> SourceConfig:
    """`[sources.<name>]`: a regex must parse lines the way warmd.analysis reads them."""
    section.check_name()
    log_format = section.string("format", choices=SOURCE_FORMATS)
    keys = {"regex": ("pattern",), "json": ("fields",)}.get(log_format, ())
    section.expect_keys("paths", "format", *keys, context=f"for format {log_format!r}")
    paths = section.string_list("paths")
    resolved = tuple(str(section.base_dir / path) for path in paths)
    pattern = _source_pattern(section) if log_format == "regex" else None
    fields = section.string_table("fields")
    known_fields = (*JSON_FIELDS, "path")
    for name, _ in fields:
        if name not in known_fields:
            raise ConfigKeyError(f"{section.key('fields')}.{name}",
                                 f"unknown field (known: {', '.join(known_fields)})")
    return SourceConfig(section.name, resolved, log_format, pattern, fields)


def _source_pattern(section: Section) -> str:
    pattern = section.string("pattern")
    try:
        groups = re.compile(pattern).groupindex
    except re.error as error:
        raise ConfigKeyError(section.key("pattern"), f"not a valid regex: {error}") from None
    if "time" not in groups or not set(TARGET_ALIASES) & set(groups):
        raise ConfigKeyError(
            section.key("pattern"),
            "needs the named groups (?P<time>...) and (?P<path>...) (or (?P<target>...), "
            'or (?P<request>...) holding "METHOD target PROTOCOL")',
        )
    return pattern


def analysis_config(section: Section) -> AnalysisConfig:
    """`[analysis]`: how often logs are polled and summaries shipped."""
    section.expect_keys("ship_interval_ms", "ship_interval_max_ms", "ship_change_ratio",
                        "poll_interval_ms", "from_start")
    default = AnalysisConfig()
    config = AnalysisConfig(
        ship_interval_ms=section.integer("ship_interval_ms", default.ship_interval_ms,
                                         minimum=1),
        ship_interval_max_ms=section.integer("ship_interval_max_ms",
                                             default.ship_interval_max_ms, minimum=1),
        ship_change_ratio=section.ratio("ship_change_ratio", default.ship_change_ratio),
        poll_interval_ms=section.integer("poll_interval_ms", default.poll_interval_ms,
                                         minimum=1),
        from_start=section.boolean("from_start", default.from_start),
    )
    if config.ship_interval_max_ms < config.ship_interval_ms:
        raise ConfigKeyError(section.key("ship_interval_max_ms"),
                             f"{config.ship_interval_max_ms} is below analysis.ship_interval_ms "
                             f"({config.ship_interval_ms}): the longest wait cannot be shorter")
    return config


def planner_config(section: Section, cache_kinds: Mapping[str, str]) -> PlannerConfig:
    """`[planner]`; `cache_kinds` maps each `[caches.X]` name to its kind, for target/watch."""
    section.expect_keys("enabled", "interval_ms", "budget", "batch_requests", "horizon_ms",
                        "task_deadline_ms", "target", "watch", "watch_interval_ms",
                        "effect_window_ms", "min_interval_ms")
    default = PlannerConfig()

    def positive(name: str) -> int:
        return section.integer(name, getattr(default, name), minimum=1)

    target = section.raw("target", str, "a string", default.target)
    if target and target not in cache_kinds:
        raise ConfigKeyError(section.key("target"), _unknown_cache(target, cache_kinds))
    return PlannerConfig(
        enabled=section.boolean("enabled", default.enabled),
        interval_ms=section.integer("interval_ms", default.interval_ms, minimum=0),
        budget=positive("budget"),
        batch_requests=positive("batch_requests"),
        horizon_ms=positive("horizon_ms"),
        task_deadline_ms=positive("task_deadline_ms"),
        target=target,
        watch=_watched_caches(section, cache_kinds),
        watch_interval_ms=positive("watch_interval_ms"),
        effect_window_ms=positive("effect_window_ms"),
        min_interval_ms=positive("min_interval_ms"),
    )


def _watched_caches(section: Section, cache_kinds: Mapping[str, str]) -> tuple[str, ...]:
    if not section.has("watch"):
        return ()
    names = section.string_list("watch")
    for position, name in enumerate(names):
        key = f"{section.key('watch')}.{position}"
        if name not in cache_kinds:
            raise ConfigKeyError(key, _unknown_cache(name, cache_kinds))
        if cache_kinds[name] not in WATCHABLE_KINDS:
            raise ConfigKeyError(key, f"{name!r} is a {cache_kinds[name]} cache; only "
                                      f"{', '.join(WATCHABLE_KINDS)} caches can be watched")
    return tuple(dict.fromkeys(names))


def _unknown_cache(name: str, cache_kinds: Mapping[str, str]) -> str:
    known = ", ".join(sorted(cache_kinds)) or "none are configured"
    return f"no [caches.{name}] (known caches: {known})"
