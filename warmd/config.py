"""The daemon's configuration: frozen dataclasses loaded from one TOML file by `load()`.

Every error is a `ConfigKeyError` naming the dotted key (`peers.3.address`) and the reason, so
the daemon can exit 78 with a message an operator can act on. docs/configuration.md lists
every key; relative paths are resolved against the config file's directory.
"""

from __future__ import annotations

import dataclasses
import grp
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warmd.config_sections import (
    SOURCE_FORMATS,
    AnalysisConfig,
    ExecutorConfig,
    MetricsConfig,
    PlannerConfig,
    SourceConfig,
    analysis_config,
    executor_config,
    metrics_config,
    planner_config,
    source_config,
)
from warmd.config_table import (
    NAME_PATTERN,
    REQUIRED,
    Address,
    ConfigKeyError,
    Section,
    check_characters,
    parse_address,
    read_private_file,
)
from warmd.errors import ConfigError
from warmd.ids import NODE_ID_MAX
from warmd.secret import Secret

__all__ = [
    "SOURCE_FORMATS",
    "Address",
    "AnalysisConfig",
    "Config",
    "ConfigError",
    "ConfigKeyError",
    "ExecutorConfig",
    "PlannerConfig",
    "ReloadPlan",
    "SourceConfig",
    "load",
    "parse_address",
    "reload_plan",
]

DEFAULT_ADMIN_SOCKET = "/run/warmd/admin.sock"
SECRET_BYTES_MIN = 16
UNIX_SOCKET_PATH_BYTES_MAX = 107  # sun_path is 108 bytes including the terminating NUL
PEER_ID_PATTERN = re.compile(r"[1-9][0-9]{0,18}")  # canonical: [peers.01] would be a 2nd peer 1
CACHE_KINDS = ("redis", "redis-cluster", "memcached", "http")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("auto", "json", "console")


@dataclass(frozen=True, slots=True)
class NodeConfig:
    node_id: int
    listen: Address  # where the Raft transport accepts peer connections
    advertise: Address  # what peers dial to reach this node
    data_dir: Path
    join: bool  # True: start empty and wait to be added to an existing cluster


@dataclass(frozen=True, slots=True)
class TlsConfig:
    cert_file: Path
    key_file: Path
    ca_file: Path


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    cluster_id: str
    secret_file: Path
    secret: Secret  # its repr is *** (never in a log line or traceback)
    tls: TlsConfig | None


@dataclass(frozen=True, slots=True)
class PeerConfig:
    node_id: int
    address: Address


@dataclass(frozen=True, slots=True)
class RaftSettings:
    tick_interval_ms: int
    election_timeout_ticks: int
    heartbeat_ticks: int
    pre_vote: bool
    check_quorum: bool
    snapshot_interval_entries: int
    segment_bytes: int
    max_frame_bytes: int
    proposal_timeout_ms: int
    max_entry_bytes: int = 1 << 20  # the largest Raft entry a proposal may carry

    @property
    def tick_interval_s(self) -> float:
        return self.tick_interval_ms / 1000


@dataclass(frozen=True, slots=True)
class AdminConfig:
    socket_path: Path
    group: str | None  # socket is 0660 and owned by this group; None: 0600
    group_id: int | None


@dataclass(frozen=True, slots=True)
class WebConfig:
    enabled: bool
    listen: Address
    token_file: Path | None
    token: str | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str
    format: str  # auto: JSON when stderr is not a terminal, readable on one


@dataclass(frozen=True, slots=True)
class CacheConfig:
    name: str
    kind: str
    addresses: tuple[Address, ...]  # one for redis, seeds for redis-cluster, servers for memcached
    url: str | None  # http only: the service's base URL
    db: int  # redis only
    password: str | None = field(repr=False)
    timeout_ms: int
    max_concurrency: int
    headers: tuple[tuple[str, str], ...]  # http only
    pipeline: int = 1  # http only: GETs per connection at once (HTTP/1.1 pipelining; 1: off)


@dataclass(frozen=True, slots=True)
class RulesConfig:
    files: tuple[Path, ...] = ()  # rule files loaded at start (one set, in order); () = none


@dataclass(frozen=True, slots=True)
class Config:
    origin: str  # the file this was loaded from
    node: NodeConfig
    cluster: ClusterConfig
    peers: tuple[PeerConfig, ...]  # the initial members, sorted by id
    raft: RaftSettings
    admin: AdminConfig
    web: WebConfig
    logging: LoggingConfig
    caches: tuple[CacheConfig, ...]
    sources: tuple[SourceConfig, ...]
    rules: RulesConfig = RulesConfig()
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)

    def peer_addresses(self) -> dict[int, Address]:
        """Every initial member's id mapped to its address, for the transport."""
        return {peer.node_id: peer.address for peer in self.peers}


# SIGHUP re-reads the file: these sections take effect at once, the others at the next restart
# (identity, the secret, Raft timing and the admin socket cannot change under a running node).
RELOADABLE_SECTIONS = ("logging", "web", "caches", "sources", "executor", "analysis", "planner")
RESTART_SECTIONS = ("node", "cluster", "peers", "raft", "admin", "metrics")
# A reload that changes one of these restarts the node's warm-up services with the new config.
SERVICE_SECTIONS = frozenset({"caches", "sources", "executor", "analysis", "planner"})


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """What a reload to a new config changes: sections applied now, and those that must wait."""

    applied: tuple[str, ...]
    needs_restart: tuple[str, ...]


def reload_plan(current: Config, candidate: Config) -> ReloadPlan:
    """Compare the running config with a freshly loaded one, section by section."""

    def changed(names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(n for n in names if getattr(current, n) != getattr(candidate, n))

    return ReloadPlan(changed(RELOADABLE_SECTIONS), changed(RESTART_SECTIONS))


def load(path: str | os.PathLike[str]) -> Config:
    """Read, parse and validate the TOML config file at `path`.

    Raises:
        ConfigError: the file is missing or unreadable, not TOML, or any key is wrong
            (`ConfigKeyError`, naming the dotted key and the reason).
    """
    file_path = Path(path)
    try:
        document = tomllib.loads(file_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {file_path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"config file {file_path} cannot be read: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{file_path}: not valid TOML: {error}") from None
    return from_mapping(document, base_dir=file_path.resolve().parent, origin=str(file_path))


def from_mapping(document: Mapping[str, Any], *, base_dir: Path, origin: str = "") -> Config:
    """Validate an already-parsed TOML document; relative paths resolve against `base_dir`.

    Raises:
        ConfigKeyError: a key is missing, unknown, of the wrong type or out of range.
    """
    try:
        config = _build(Section(dict(document), "", base_dir))
    except ConfigKeyError as error:
        raise ConfigKeyError(error.key, error.reason, origin) from None
    return dataclasses.replace(config, origin=origin)


def _build(root: Section) -> Config:
    root.expect_keys(
        "node", "cluster", "peers", "raft", "admin", "web", "logging", "caches", "sources",
        "rules", "executor", "analysis", "planner", "metrics",
    )
    node_section = root.section("node", required=True)
    peers = _peers(root.section("peers"))
    node = _node(node_section, peers)
    caches = tuple(_cache(s) for s in root.section("caches").subsections())
    return Config(
        origin="",
        node=node,
        cluster=_cluster(root.section("cluster", required=True)),
        peers=peers,
        raft=_raft(root.section("raft")),
        admin=_admin(root.section("admin")),
        web=_web(root.section("web")),
        logging=_logging(root.section("logging")),
        caches=caches,
        sources=tuple(source_config(s) for s in root.section("sources").subsections()),
        rules=_rules(root.section("rules")),
        executor=executor_config(root.section("executor")),
        analysis=analysis_config(root.section("analysis")),
        planner=planner_config(root.section("planner"),
                               {cache.name: cache.kind for cache in caches}),
        metrics=metrics_config(root.section("metrics")),
    )


def _rules(section: Section) -> RulesConfig:
    """`[rules] files = [...]`, resolved against the config's directory (not read here: the
    daemon checks them at start and `warmctl rules reload` re-reads them)."""
    section.expect_keys("files")
    if not section.has("files"):
        return RulesConfig()
    return RulesConfig(tuple((section.base_dir / name).resolve()
                             for name in section.string_list("files")))


def _node(section: Section, peers: tuple[PeerConfig, ...]) -> NodeConfig:
    section.expect_keys("id", "listen", "advertise", "data_dir", "join")
    node_id = section.integer("id", minimum=1, maximum=NODE_ID_MAX)
    listen = section.address("listen", allow_port_zero=True)
    join = section.boolean("join", False)
    own = next((peer for peer in peers if peer.node_id == node_id), None)
    if own is None and not join:
        raise ConfigKeyError(
            "peers",
            f"must list this node (node.id = {node_id}) among the initial members, "
            "or set node.join = true to join an existing cluster",
        )
    default_advertise = own.address if own else REQUIRED
    if default_advertise is REQUIRED and not _is_wildcard(listen) and listen.port:
        default_advertise = listen
    advertise = section.address("advertise", default_advertise)
    if own is not None and own.address != advertise:
        raise ConfigKeyError(
            f"peers.{node_id}.address",
            f"{own.address} differs from node.advertise ({advertise}); they must be equal",
        )
    return NodeConfig(node_id, listen, advertise, section.directory("data_dir"), join)


def _peers(section: Section) -> tuple[PeerConfig, ...]:
    peers: list[PeerConfig] = []
    seen: dict[Address, str] = {}
    for peer_section in section.subsections():
        name = peer_section.name
        check_characters(peer_section.path, name)
        if not PEER_ID_PATTERN.fullmatch(name) or int(name) > NODE_ID_MAX:
            raise ConfigKeyError(
                peer_section.path,
                f"peer ids are integers 1..{NODE_ID_MAX} written without leading zeros or "
                "signs, e.g. [peers.1] (so that no two sections name the same peer)",
            )
        peer_section.expect_keys("address")
        address = peer_section.address("address")
        if address in seen:
            raise ConfigKeyError(
                f"{peer_section.path}.address", f"{address} is also {seen[address]}"
            )
        seen[address] = f"{peer_section.path}.address"
        peers.append(PeerConfig(int(name), address))
    return tuple(sorted(peers, key=lambda peer: peer.node_id))


def _cluster(section: Section) -> ClusterConfig:
    section.expect_keys("id", "secret_file", "tls")
    cluster_id = section.string("id", pattern=NAME_PATTERN)
    secret_file = section.file_path("secret_file")
    secret = read_private_file(secret_file, f"{section.path}.secret_file").strip()
    if len(secret) < SECRET_BYTES_MIN:
        raise ConfigKeyError(
            f"{section.path}.secret_file",
            f"{secret_file} holds {len(secret)} bytes; the secret needs at least "
            f"{SECRET_BYTES_MIN} (e.g. `openssl rand -base64 32`)",
        )
    tls = None
    if section.has("tls"):
        tls_section = section.section("tls")
        tls_section.expect_keys("cert_file", "key_file", "ca_file")
        tls = TlsConfig(
            tls_section.existing_file("cert_file"),
            tls_section.existing_file("key_file", private=True),
            tls_section.existing_file("ca_file"),
        )
        _check_tls_files(tls, tls_section.path)
    return ClusterConfig(cluster_id, secret_file, Secret(secret), tls)


def _check_tls_files(tls: TlsConfig, path: str) -> None:
    """Load the certificate, key and CA as the daemon will, so a bad file is a config error
    (exit 78, naming the key) rather than a traceback at start."""
    import ssl  # only configs with TLS pay for it

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for key, load in (("ca_file", lambda: context.load_verify_locations(cafile=str(tls.ca_file))),
                      ("cert_file", lambda: context.load_cert_chain(str(tls.cert_file),
                                                                    str(tls.key_file)))):
        try:
            load()
        except (ssl.SSLError, OSError) as error:
            raise ConfigKeyError(f"{path}.{key}", f"cannot be loaded: {error}") from None


def _raft(section: Section) -> RaftSettings:
    section.expect_keys(
        "tick_interval_ms",
        "election_timeout_ticks",
        "heartbeat_ticks",
        "pre_vote",
        "check_quorum",
        "snapshot_interval_entries",
        "segment_bytes",
        "max_frame_bytes",
        "proposal_timeout_ms",
        "max_entry_bytes",
    )
    heartbeat_ticks = section.integer("heartbeat_ticks", 2, minimum=1, maximum=1000)
    election_timeout_ticks = section.integer("election_timeout_ticks", 10, minimum=2, maximum=10000)
    if election_timeout_ticks <= heartbeat_ticks:
        raise ConfigKeyError(
            f"{section.path}.election_timeout_ticks",
            f"{election_timeout_ticks} must be greater than raft.heartbeat_ticks "
            f"({heartbeat_ticks}); 5 to 10 times is usual",
        )
    max_frame_bytes = section.integer("max_frame_bytes", 16 << 20, minimum=1 << 16,
                                      maximum=1 << 30)
    return RaftSettings(
        tick_interval_ms=section.integer("tick_interval_ms", 50, minimum=1, maximum=10_000),
        election_timeout_ticks=election_timeout_ticks,
        heartbeat_ticks=heartbeat_ticks,
        pre_vote=section.boolean("pre_vote", True),
        check_quorum=section.boolean("check_quorum", True),
        snapshot_interval_entries=section.integer("snapshot_interval_entries", 100_000, minimum=1),
        segment_bytes=section.integer("segment_bytes", 64 << 20, minimum=1 << 16, maximum=1 << 32),
        max_frame_bytes=max_frame_bytes,
        proposal_timeout_ms=section.integer("proposal_timeout_ms", 5000, minimum=1),
        max_entry_bytes=_max_entry_bytes(section, max_frame_bytes),
    )


def _max_entry_bytes(section: Section, frame: int) -> int:
    """The Raft entry cap: at least 1 MiB (a summary is encoded to fit one), and below the
    transport's frame limit (an APPEND frame carries at least one whole entry)."""
    cap = section.integer("max_entry_bytes", 1 << 20, minimum=1 << 20, maximum=64 << 20)
    if cap + (64 << 10) > frame:
        raise ConfigKeyError(f"{section.path}.max_entry_bytes",
                             f"{cap} leaves no room in raft.max_frame_bytes ({frame}); "
                             "keep it at least 64 KiB below")
    return cap


def _admin(section: Section) -> AdminConfig:
    section.expect_keys("socket", "group")
    socket_path = section.file_path("socket", DEFAULT_ADMIN_SOCKET)
    if len(os.fsencode(socket_path)) > UNIX_SOCKET_PATH_BYTES_MAX:
        raise ConfigKeyError(
            f"{section.path}.socket",
            f"{socket_path} is longer than {UNIX_SOCKET_PATH_BYTES_MAX} bytes, "
            "the limit for a Unix socket path",
        )
    group = section.string("group", None)
    group_id = None
    if group is not None:
        try:
            group_id = grp.getgrnam(group).gr_gid
        except KeyError:
            raise ConfigKeyError(
                f"{section.path}.group", f"no group named {group!r} on this host"
            ) from None
    return AdminConfig(socket_path, group, group_id)


def _web(section: Section) -> WebConfig:
    section.expect_keys("enabled", "listen", "token_file")
    enabled = section.boolean("enabled", True)
    listen = section.address("listen", Address("127.0.0.1", 8080), allow_port_zero=True)
    token_file = section.file_path("token_file", None)
    token = None
    if token_file is not None:
        token = (
            read_private_file(token_file, f"{section.path}.token_file")
            .strip()
            .decode("utf-8", errors="replace")
        )
    elif enabled and not listen.is_loopback():
        raise ConfigKeyError(
            f"{section.path}.token_file",
            f"required when web.listen ({listen}) is not a loopback address: the console "
            "and /metrics are never served to the network without tokens (this one lets "
            "scrapers read /metrics; people log in with `warmctl token add` tokens)",
        )
    return WebConfig(enabled, listen, token_file, token)


def _logging(section: Section) -> LoggingConfig:
    section.expect_keys("level", "format")
    return LoggingConfig(
        level=section.string("level", "info", choices=LOG_LEVELS),
        format=section.string("format", "auto", choices=LOG_FORMATS),
    )


_CACHE_KEYS = {
    "redis": ("kind", "address", "db", "password_file", "timeout_ms", "max_concurrency"),
    "redis-cluster": ("kind", "addresses", "password_file", "timeout_ms", "max_concurrency"),
    "memcached": ("kind", "addresses", "timeout_ms", "max_concurrency"),
    "http": ("kind", "url", "headers", "timeout_ms", "max_concurrency", "pipeline"),
}


def _cache(section: Section) -> CacheConfig:
    section.check_name()
    kind = section.string("kind", choices=CACHE_KINDS)
    section.expect_keys(*_CACHE_KEYS[kind], context=f"for kind {kind!r}")
    if kind == "redis":
        addresses: tuple[Address, ...] = (section.address("address"),)
    elif kind == "http":
        addresses = ()
    else:
        addresses = tuple(section.addresses("addresses"))
    password_file = section.file_path("password_file", None)
    password = None
    if password_file is not None:
        raw = read_private_file(password_file, f"{section.path}.password_file")
        password = raw.strip().decode("utf-8", errors="replace")
    return CacheConfig(
        name=section.name,
        kind=kind,
        addresses=addresses,
        url=section.url("url") if kind == "http" else None,
        db=section.integer("db", 0, minimum=0, maximum=15),
        password=password,
        timeout_ms=section.integer("timeout_ms", 1000, minimum=1, maximum=600_000),
        max_concurrency=section.integer("max_concurrency", 64, minimum=1, maximum=100_000),
        headers=section.string_table("headers"),
        pipeline=section.integer("pipeline", 1, minimum=1, maximum=256),
    )


def _is_wildcard(address: Address) -> bool:
    return address.host in ("0.0.0.0", "::")
