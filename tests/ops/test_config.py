"""warmd.config: defaults, and every kind of bad input named by its dotted key (exit 78)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from warmd.config import (
    Address,
    AnalysisConfig,
    ConfigKeyError,
    PlannerConfig,
    ReloadPlan,
    from_mapping,
    load,
    parse_address,
    reload_plan,
)
from warmd.errors import ConfigError
from warmd.testing.configs import ONE_NODE, TEST_SECRET, write_config

REPO = Path(__file__).resolve().parents[2]
SECRET = TEST_SECRET

MINIMAL = ONE_NODE + """[peers.2]
address = "127.0.0.1:7002"
[peers.3]
address = "127.0.0.1:7003"
"""


def load_error(directory: Path, text: str, **kwargs: int) -> ConfigKeyError:
    """Load `text` and return the ConfigKeyError it must raise."""
    with pytest.raises(ConfigKeyError) as caught:
        load(write_config(directory, text, **kwargs))
    return caught.value


def test_minimal_config_gets_documented_defaults(tmp_path: Path) -> None:
    """A config with only the required keys loads with the defaults docs/configuration.md lists."""
    config = load(write_config(tmp_path, MINIMAL))
    assert config.node.node_id == 1
    assert config.node.advertise == Address("127.0.0.1", 7001)
    assert config.node.data_dir == tmp_path / "data"
    assert config.cluster.secret.reveal() == SECRET.strip()
    assert config.peer_addresses() == {
        1: Address("127.0.0.1", 7001), 2: Address("127.0.0.1", 7002), 3: Address("127.0.0.1", 7003)
    }
    assert (config.raft.tick_interval_ms, config.raft.election_timeout_ticks) == (50, 10)
    assert config.raft.heartbeat_ticks == 2 and config.raft.tick_interval_s == 0.05
    assert config.raft.pre_vote and config.raft.check_quorum
    assert config.raft.snapshot_interval_entries == 100_000
    assert config.raft.max_entry_bytes == 1 << 20
    assert config.admin.socket_path == Path("/run/warmd/admin.sock")
    assert config.admin.group is None
    assert config.web.listen == Address("127.0.0.1", 8080) and config.web.token is None
    assert (config.logging.level, config.logging.format) == ("info", "auto")
    assert config.caches == () and config.sources == ()
    assert config.origin == str(tmp_path / "warmd.toml")


def test_secret_never_appears_in_repr(tmp_path: Path) -> None:
    """The cluster secret is kept out of repr(), so logging a config cannot leak it."""
    config = load(write_config(tmp_path, MINIMAL))
    assert SECRET.strip().decode() not in repr(config)


# (a snippet to append, or (old, new) replacements in MINIMAL; the dotted key; part of the reason)
ERROR_CASES = [
    (("id = 1\n", ""), "node.id", "required but missing"),
    (("id = 1\n", 'id = "one"\n'), "node.id", "expected an integer, got a string 'one'"),
    (("id = 1\n", "id = 0\n"), "node.id", "below the minimum 1"),
    (("id = 1\n", "id = true\n"), "node.id", "expected an integer, got a boolean"),
    (('listen = "127.0.0.1:7001"', 'listen = "localhost"'), "node.listen", "not host:port"),
    (('listen = "127.0.0.1:7001"', 'listen = "[::1:7001"'), "node.listen", "not host:port"),
    (('"127.0.0.1:7003"', '"127.0.0.1:99999"'), "peers.3.address", "outside 1..65535"),
    (('"127.0.0.1:7003"', '"bad host!:7003"'), "peers.3.address", "neither an IP address"),
    (('"127.0.0.1:7003"', '"127.0.0.1:7002"'), "peers.3.address", "is also peers.2.address"),
    (("[peers.3]", "[peers.x]"), "peers.x", "peer ids are integers"),
    (("[peers.3]", "[peers.01]"), "peers.01", "without leading zeros"),
    (("[peers.3]", '[peers."+3"]'), "peers.+3", "without leading zeros"),
    (("[peers.3]", '[peers."\u0663"]'), "peers.\u0663", "without leading zeros"),
    (("[peers.3]", "[peers.9223372036854775808]"), "peers.9223372036854775808",
     "integers 1..9223372036854775807"),
    (("id = 1\n", "id = 9223372036854775807\n"), "peers", "must list this node"),
    (('data_dir = "data"', 'data_dir = "data\\u0000x"'), "node.data_dir",
     "control character U+0000 at position 4"),
    (('id = "test"', 'id = "te\\u001bst"'), "cluster.id", "control character U+001B"),
    ("[caches.api]\nkind = \"http\"\nurl = \"http://x\"\nheaders = { A = \"1\\r\\nB: 2\" }\n",
     "caches.api.headers.A", "control character U+000D"),
    ("[sources.x]\npaths = [\"a\\u0000.log\"]\nformat = \"combined\"\n", "sources.x.paths.0",
     "control character U+0000"),
    (("[peers.1]\naddress = \"127.0.0.1:7001\"\n", ""), "peers", "must list this node"),
    ((('[peers.1]\naddress = "127.0.0.1:7001"', '[peers.1]\naddress = "127.0.0.1:7009"'),
      ('data_dir = "data"', 'advertise = "127.0.0.1:7001"\ndata_dir = "data"')),
     "peers.1.address", "differs from node.advertise"),
    (('id = "test"', 'id = "Bad Id"'), "cluster.id", "lowercase"),
    (('secret_file = "cluster.secret"', 'secret_file = "missing.secret"'),
     "cluster.secret_file", "openssl rand"),
    (('data_dir = "data"', 'data_dir = "cluster.secret"'), "node.data_dir", "not a directory"),
    ("[raft]\nelection_timeout_ticks = 2\nheartbeat_ticks = 2\n",
     "raft.election_timeout_ticks", "greater than raft.heartbeat_ticks"),
    ("[raft]\ntick_interval_ms = 0.5\n", "raft.tick_interval_ms", "expected an integer, got a float"),
    ("[raft]\npre_vote = \"yes\"\n", "raft.pre_vote", "expected true or false"),
    ("[raft]\nmax_frame_bytes = 10\n", "raft.max_frame_bytes", "below the minimum"),
    ("[raft]\nmax_entry_bytes = 1000\n", "raft.max_entry_bytes", "below the minimum"),
    ("[raft]\nmax_entry_bytes = 16777216\n", "raft.max_entry_bytes",
     "no room in raft.max_frame_bytes"),
    ("[admin]\ngroup = \"no-such-group-xyz\"\n", "admin.group", "no group named"),
    (f"[admin]\nsocket = \"/run/{'x' * 120}.sock\"\n", "admin.socket", "longer than 107 bytes"),
    ("[web]\nlisten = \"0.0.0.0:8080\"\n", "web.token_file", "not a loopback address"),
    ("[logging]\nlevel = \"verbose\"\n", "logging.level", "not one of debug, info"),
    ("[caches.main]\nkind = \"reddis\"\naddress = \"127.0.0.1:6379\"\n",
     "caches.main.kind", "did you mean 'redis'?"),
    ("[caches.main]\naddress = \"127.0.0.1:6379\"\n", "caches.main.kind", "required"),
    ("[caches.mc]\nkind = \"memcached\"\naddress = \"127.0.0.1:11211\"\n",
     "caches.mc.address", "unknown key for kind 'memcached'; did you mean 'addresses'?"),
    ("[caches.mc]\nkind = \"memcached\"\naddresses = []\n", "caches.mc.addresses", "at least one"),
    ("[caches.api]\nkind = \"http\"\nurl = \"ftp://example\"\n", "caches.api.url", "http://"),
    ("[caches.api]\nkind = \"http\"\nurl = \"http://x\"\nheaders = { A = 1 }\n",
     "caches.api.headers.A", "expected a string"),
    ("[caches.Main]\nkind = \"redis\"\naddress = \"127.0.0.1:6379\"\n", "caches.Main", "lowercase"),
    ("[sources.x]\npaths = [\"a.log\"]\nformat = \"regex\"\n", "sources.x.pattern", "required"),
    ("[sources.x]\npaths = [\"a.log\"]\nformat = \"regex\"\npattern = \"(\"\n",
     "sources.x.pattern", "not a valid regex"),
    ("[sources.x]\npaths = [\"a.log\"]\nformat = \"regex\"\npattern = \"(?P<p>.*)\"\n",
     "sources.x.pattern", "(?P<path>"),
    ("[sources.x]\npaths = []\nformat = \"combined\"\n", "sources.x.paths", "at least one"),
    ("[sources.x]\npaths = [\"a.log\", 3]\nformat = \"combined\"\n", "sources.x.paths.1",
     "expected a non-empty string, got an integer 3"),
    ("[sources.x]\npaths = [\"a.log\"]\nformat = \"combined\"\npattern = \"x\"\n",
     "sources.x.pattern", "unknown key for format 'combined'"),
    ("[sources.x]\npaths = [\"a.log\"]\nformat = \"regex\"\npattern = \"(?P<path>\\\\S+)\"\n",
     "sources.x.pattern", "(?P<time>"),
    ("[sources.x]\npaths = [\"a.log\"]\nformat = \"json\"\nfields = { url = \"u\" }\n",
     "sources.x.fields.url", "unknown field"),
    ("[analysis]\npoll_interval_ms = 0\n", "analysis.poll_interval_ms", "below the minimum 1"),
    ("[analysis]\nship_interval = 5\n", "analysis.ship_interval",
     "did you mean 'ship_interval_ms'"),
    ("[analysis]\nfrom_start = 1\n", "analysis.from_start", "expected true or false"),
    ("[planner]\ninterval_ms = -1\n", "planner.interval_ms", "below the minimum 0"),
    ("[planner]\nbudget = 0\n", "planner.budget", "below the minimum 1"),
    ("[planner]\nmin_interval_ms = 0\n", "planner.min_interval_ms", "below the minimum 1"),
    ("[planner]\ntarget = \"nope\"\n", "planner.target", "known caches: none are configured"),
    ("[caches.api]\nkind = \"http\"\nurl = \"http://x\"\n[planner]\ntarget = \"apj\"\n",
     "planner.target", "no [caches.apj] (known caches: api)"),
    ("[caches.r]\nkind = \"redis\"\naddress = \"127.0.0.1:6379\"\n"
     "[planner]\nwatch = [\"r\", \"s\"]\n",
     "planner.watch.1", "no [caches.s] (known caches: r)"),
    ("[caches.api]\nkind = \"http\"\nurl = \"http://x\"\n[planner]\nwatch = [\"api\"]\n",
     "planner.watch.0", "only redis, redis-cluster, memcached caches can be watched"),
    ("[planner]\nwatch = []\n", "planner.watch", "at least one"),
    ("[planner]\nwatch_intervals_ms = 5\n", "planner.watch_intervals_ms",
     "did you mean 'watch_interval_ms'"),
    ("[cluster.tls]\ncert_file = \"nope.crt\"\nkey_file = \"k\"\nca_file = \"c\"\n",
     "cluster.tls.cert_file", "not an existing file"),
]


@pytest.mark.parametrize(("change", "key", "reason"), ERROR_CASES)
def test_every_error_names_its_key(tmp_path: Path, change: object, key: str, reason: str) -> None:
    """Each bad value raises a ConfigKeyError (exit 78) naming the dotted key and the reason."""
    if isinstance(change, str):
        text = MINIMAL + change
    else:
        replacements = change if isinstance(change[0], tuple) else (change,)
        text = MINIMAL
        for old, new in replacements:
            assert old in text
            text = text.replace(old, new, 1)
    error = load_error(tmp_path, text)
    assert error.key == key
    assert reason in error.reason
    assert str(error).startswith(f"{tmp_path / 'warmd.toml'}: {key}: ")
    assert isinstance(error, ConfigError) and error.exit_status == 78


@pytest.mark.parametrize(
    ("snippet", "key", "suggestion"),
    [
        ("[nodes]\nid = 2\n", "nodes", "did you mean 'node'?"),
        ("[raft]\nheartbeat_tick = 2\n", "raft.heartbeat_tick", "did you mean 'heartbeat_ticks'?"),
        ("[logging]\nlevle = \"info\"\n", "logging.levle", "did you mean 'level'?"),
        ("[admin]\nsocket_path = \"/run/a.sock\"\n", "admin.socket_path", "did you mean 'socket'?"),
    ],
)
def test_unknown_key_suggests_the_closest(
    tmp_path: Path, snippet: str, key: str, suggestion: str
) -> None:
    """An unknown key is an error naming it, with a did-you-mean suggestion and the known keys."""
    error = load_error(tmp_path, MINIMAL + snippet)
    assert error.key == key
    assert "unknown key" in error.reason and suggestion in error.reason
    assert "(known: " in error.reason


def test_unknown_key_inside_a_peer_is_named(tmp_path: Path) -> None:
    """A typo inside a peer table names the full path, peers.3.adress, and suggests address."""
    text = MINIMAL.replace('[peers.3]\naddress = "127.0.0.1:7003"', '[peers.3]\nadress = "x"')
    error = load_error(tmp_path, text)
    assert (error.key, "did you mean 'address'?" in error.reason) == ("peers.3.adress", True)


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o602])
def test_secret_readable_or_writable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    """A cluster secret that every user can read or write is refused, with the chmod to run."""
    error = load_error(tmp_path, MINIMAL, secret_mode=mode)
    assert error.key == "cluster.secret_file"
    assert f"mode {mode:04o}" in error.reason and "chmod 600" in error.reason


def test_group_readable_secret_is_accepted(tmp_path: Path) -> None:
    """0640 is fine: /etc/warmd is root:warmd and the daemon reads the secret through its group."""
    assert load(write_config(tmp_path, MINIMAL, secret_mode=0o640)).cluster.secret


def test_short_secret_is_refused(tmp_path: Path) -> None:
    """A secret shorter than 16 bytes is refused, saying how many bytes it has."""
    path = write_config(tmp_path, MINIMAL)
    (tmp_path / "cluster.secret").write_bytes(b"short\n")
    with pytest.raises(ConfigKeyError, match=r"cluster.secret_file: .* holds 5 bytes"):
        load(path)


def test_token_file_is_read_and_permission_checked(tmp_path: Path) -> None:
    """web.token_file makes a public web.listen acceptable, and is held to the secret's rules."""
    token = tmp_path / "web.token"
    token.write_text("s3cret-token\n")
    token.chmod(0o600)
    text = MINIMAL + '[web]\nlisten = "0.0.0.0:8080"\ntoken_file = "web.token"\n'
    config = load(write_config(tmp_path, text))
    assert config.web.token == "s3cret-token" and "s3cret" not in repr(config)
    token.chmod(0o644)
    assert load_error(tmp_path, text).key == "web.token_file"


def test_not_toml_names_file_and_line(tmp_path: Path) -> None:
    """A TOML syntax error is a ConfigError naming the file and the line."""
    path = write_config(tmp_path, MINIMAL + "\n[raft\n")
    with pytest.raises(ConfigError, match=re.escape(str(path)) + r": not valid TOML: .*line \d+"):
        load(path)


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    """A config path that does not exist is reported as such (exit 78), not as a traceback."""
    with pytest.raises(ConfigError, match="does not exist") as caught:
        load(tmp_path / "nope.toml")
    assert caught.value.exit_status == 78


def test_joining_node_need_not_be_a_peer(tmp_path: Path) -> None:
    """node.join = true lets a new node start with only the existing members as peers."""
    text = MINIMAL.replace("id = 1\n", "id = 4\njoin = true\n", 1).replace(
        '"127.0.0.1:7001"\ndata_dir', '"127.0.0.1:7004"\ndata_dir'
    )
    config = load(write_config(tmp_path, text))
    assert config.node.join and config.node.node_id == 4
    assert config.node.advertise == Address("127.0.0.1", 7004)
    assert 4 not in config.peer_addresses()


def test_wildcard_listen_needs_an_advertise_address(tmp_path: Path) -> None:
    """Listening on 0.0.0.0 gives peers nothing to dial, so advertise comes from peers or is required."""
    text = MINIMAL.replace('listen = "127.0.0.1:7001"', 'listen = "0.0.0.0:7001"')
    assert load(write_config(tmp_path, text)).node.advertise == Address("127.0.0.1", 7001)
    text = text.replace("id = 1\n", "id = 9\njoin = true\n", 1)
    assert load_error(tmp_path, text).key == "node.advertise"


def test_caches_and_sources_are_typed(tmp_path: Path) -> None:
    """Each cache kind and source format yields its typed record with paths resolved."""
    text = MINIMAL + """
[caches.r]
kind = "redis"
address = "127.0.0.1:6379"
db = 2
[caches.rc]
kind = "redis-cluster"
addresses = ["127.0.0.1:7000", "[::1]:7001"]
[caches.api]
kind = "http"
url = "http://127.0.0.1:8000/"
headers = { "X-Warmup" = "1" }
[sources.app]
paths = ["logs/*.json"]
format = "json"
fields = { path = "uri" }
"""
    config = load(write_config(tmp_path, text))
    caches = {cache.name: cache for cache in config.caches}
    assert caches["r"].addresses == (Address("127.0.0.1", 6379),) and caches["r"].db == 2
    assert caches["rc"].addresses[1] == Address("::1", 7001)
    assert str(caches["rc"].addresses[1]) == "[::1]:7001"
    assert caches["api"].url == "http://127.0.0.1:8000"
    assert caches["api"].headers == (("X-Warmup", "1"),)
    (source,) = config.sources
    assert source.paths == (str(tmp_path / "logs/*.json"),) and source.fields == (("path", "uri"),)


def test_parse_address_forms() -> None:
    """host:port, [v6]:port and host names parse; a bare IPv6 without brackets does not."""
    assert parse_address("example.com:80") == Address("example.com", 80)
    assert parse_address("[fe80::1]:7000") == Address("fe80::1", 7000)
    with pytest.raises(ValueError, match="not host:port"):
        parse_address("fe80::1:7000")
    with pytest.raises(ValueError, match="outside"):
        parse_address("127.0.0.1:0")


def test_shipped_cluster_configs_load(tmp_path: Path) -> None:
    """conf/cluster/node{1,2,3}.toml load and describe one cluster on distinct ports and dirs."""
    for path in (REPO / "conf" / "cluster").glob("node*.toml"):
        shutil.copy(path, tmp_path / path.name)
    write_config(tmp_path, "")
    configs = [load(tmp_path / f"node{n}.toml") for n in (1, 2, 3)]
    assert [config.node.node_id for config in configs] == [1, 2, 3]
    assert len({config.node.listen for config in configs}) == 3
    assert len({config.node.data_dir for config in configs}) == 3
    assert len({config.admin.socket_path for config in configs}) == 3
    assert len({config.web.listen for config in configs}) == 3
    assert len({config.cluster.cluster_id for config in configs}) == 1
    assert all(config.peer_addresses() == configs[0].peer_addresses() for config in configs)


def test_shipped_example_config_is_valid(tmp_path: Path) -> None:
    """conf/warmd.toml is valid once its host-specific files (secret, group) exist."""
    document = tomllib.loads((REPO / "conf" / "warmd.toml").read_text())
    write_config(tmp_path, "")
    document["cluster"]["secret_file"] = str(tmp_path / "cluster.secret")
    document["admin"]["group"] = "root"
    config = from_mapping(document, base_dir=tmp_path)
    assert config.admin.group_id == 0 and len(config.caches) == 3


def test_reload_plan_separates_live_and_restart_changes(tmp_path: Path) -> None:
    """A new log level and cache apply on SIGHUP; a new tick interval waits for a restart."""
    current = load(write_config(tmp_path, MINIMAL))
    assert reload_plan(current, current) == ReloadPlan((), ())
    changed = MINIMAL + (
        '[logging]\nlevel = "debug"\n[raft]\ntick_interval_ms = 20\n'
        '[caches.r]\nkind = "redis"\naddress = "127.0.0.1:6379"\n'
    )
    plan = reload_plan(current, load(write_config(tmp_path, changed)))
    assert plan == ReloadPlan(applied=("logging", "caches"), needs_restart=("raft",))


def test_tls_files_are_resolved_and_key_is_private(tmp_path: Path) -> None:
    """[cluster.tls] resolves its three files; a world-readable key is refused like a secret,
    and a file that is not a certificate is a config error naming its key (not a traceback)."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(tmp_path / "node.key"), "-out", str(tmp_path / "node.crt"),
         "-days", "1", "-subj", "/CN=node"], check=True, capture_output=True)
    shutil.copy(tmp_path / "node.crt", tmp_path / "ca.crt")
    (tmp_path / "node.key").chmod(0o600)
    text = MINIMAL + '[cluster.tls]\ncert_file = "node.crt"\nkey_file = "node.key"\nca_file = "ca.crt"\n'
    tls = load(write_config(tmp_path, text)).cluster.tls
    assert tls is not None and tls.key_file == tmp_path / "node.key"
    (tmp_path / "ca.crt").write_text("-----BEGIN PLACEHOLDER-----\n")
    assert load_error(tmp_path, text).key == "cluster.tls.ca_file"
    (tmp_path / "node.key").chmod(0o644)
    assert load_error(tmp_path, text).key == "cluster.tls.key_file"


def test_default_socket_matches_the_clients_default() -> None:
    """The daemon's default admin socket is where warmctl looks by default."""
    from warmd.admin.client import DEFAULT_SOCKET_PATH
    from warmd.config import DEFAULT_ADMIN_SOCKET

    assert DEFAULT_ADMIN_SOCKET == DEFAULT_SOCKET_PATH


def test_executor_section_defaults_on_and_names_bad_keys(tmp_path: Path) -> None:
    """Every node runs an executor by default; bad [executor] values name their key."""
    config = load(write_config(tmp_path, MINIMAL))
    assert config.executor.enabled and config.executor.capacity == 4
    custom = load(write_config(tmp_path, MINIMAL + "[executor]\nenabled = false\ncapacity = 0\n"))
    assert not custom.executor.enabled and custom.executor.capacity == 0
    error = load_error(tmp_path, MINIMAL + "[executor]\nlease_ms = 1000\n"
                       "heartbeat_interval_ms = 1000\n")
    assert error.key == "executor.heartbeat_interval_ms" and "shorter" in error.reason
    error = load_error(tmp_path, MINIMAL + "[executor]\ncapacty = 3\n")
    assert error.key == "executor.capacty" and "capacity" in str(error)


def test_analysis_and_planner_default_and_read_every_key(tmp_path: Path) -> None:
    """[analysis] and [planner] are optional with documented defaults; every key is read."""
    config = load(write_config(tmp_path, MINIMAL))
    assert config.analysis == AnalysisConfig(10_000, 1_000, True)
    assert config.planner == PlannerConfig() and config.planner.watch == ()
    assert (config.planner.interval_ms, config.planner.budget) == (600_000, 1000)
    text = MINIMAL + """
[caches.api]
kind = "http"
url = "http://127.0.0.1:8000"
[caches.r]
kind = "redis"
address = "127.0.0.1:6379"
[analysis]
ship_interval_ms = 2000
poll_interval_ms = 100
from_start = false
ship_interval_max_ms = 120000
ship_change_ratio = 0.1
[planner]
enabled = false
interval_ms = 0
budget = 50
batch_requests = 5
horizon_ms = 3600000
task_deadline_ms = 60000
target = "api"
watch = ["r", "r"]
watch_interval_ms = 250
effect_window_ms = 30000
min_interval_ms = 1000
"""
    config = load(write_config(tmp_path, text))
    assert config.analysis == AnalysisConfig(2000, 100, False, 120_000, 0.1)
    assert config.planner == PlannerConfig(False, 0, 50, 5, 3_600_000, 60_000, "api", ("r",),
                                           250, 30_000, 1000)


def test_regex_and_json_sources_accept_the_analysis_field_names(tmp_path: Path) -> None:
    """A regex with time and target (or request) groups, and json fields like target, load."""
    text = MINIMAL + r"""
[sources.a]
paths = ["a.log"]
format = "regex"
pattern = '(?P<time>\S+) (?P<request>[^"]+)'
[sources.b]
paths = ["b.log"]
format = "json"
fields = { target = "uri", time = "ts" }
[sources.c]
paths = ["c.log"]
format = "auto"
"""
    sources = {source.name: source for source in load(write_config(tmp_path, text)).sources}
    assert sources["a"].pattern is not None and "request" in sources["a"].pattern
    assert sources["b"].fields == (("target", "uri"), ("time", "ts"))
    assert sources["c"].format == "auto"


def test_analysis_and_planner_changes_apply_live_and_raft_waits_for_a_restart(
        tmp_path: Path) -> None:
    """A reload applies [analysis] and [planner] (the services restart); [raft] waits."""
    current = load(write_config(tmp_path, MINIMAL))
    changed = MINIMAL + "[analysis]\nship_interval_ms = 5\n[planner]\nbudget = 7\n"
    plan = reload_plan(current, load(write_config(tmp_path, changed)))
    assert plan == ReloadPlan(applied=("analysis", "planner"), needs_restart=())
    with_raft = changed + "[raft]\nheartbeat_ticks = 3\n"
    plan = reload_plan(current, load(write_config(tmp_path, with_raft)))
    assert plan == ReloadPlan(applied=("analysis", "planner"), needs_restart=("raft",))


def test_every_analysis_and_planner_key_is_documented() -> None:
    """docs/configuration.md and conf/warmd.toml describe every [analysis] and [planner] key."""
    docs = (REPO / "docs" / "configuration.md").read_text()
    example = (REPO / "conf" / "warmd.toml").read_text()
    for settings in (AnalysisConfig(), PlannerConfig()):
        for name in settings.__slots__:
            assert f"| `{name}` |" in docs, name
            assert f"{name} = " in example, name
