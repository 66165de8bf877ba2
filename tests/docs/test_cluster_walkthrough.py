"""README.md's cluster and service blocks and docs/operations.md, run as an operator would.

The commands are read from the documents themselves, so an edit there is tested: the shipped
`conf/cluster/node*.toml` (copied, with free ports and a scratch directory in place of
/tmp/warmd-cluster) are started by the README's own shell lines; the README's service block
is appended to them as written (its addresses pointed at a real Redis, a real origin and a
generated access log) and loaded with SIGHUP; then every command of operations.md's code
blocks runs, each optional part once left out and once given (`[--state RUNNING]`), with the
placeholders (`TASK_ID`, `PLAN`, `NODE`, ...) filled from the running cluster. Lines that
only systemd can run (`systemctl ...`) are played by signalling the daemon.

Every command must exit as documented with no traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from warmd.testing.loggen import LogSpec, generate_lines
from warmd.testing.servers import ServerProcess, free_port, start_redis

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
NODES = (1, 2, 3)
SETTLE_S = 60.0


def code_blocks(document: str, heading: str, language: str = "sh") -> list[str]:
    """The fenced blocks of `language` in the section under `heading` (to the next ##)."""
    text = (REPO / document).read_text()
    section = text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, re.DOTALL)


def command_lines(block: str) -> list[str]:
    """The commands of a block, end-of-line comments stripped (a `#` inside quotes stays)."""
    lines = []
    for raw in block.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        lines.append(re.sub(r"\s+#\s.*$", "", raw).strip())
    return lines


def variants(line: str) -> list[str]:
    """A documented command with its optional `[...]` parts once left out, once given."""
    if "[" not in line:
        return [line]
    without = re.sub(r"\s*\[[^\]]*\]", "", line)
    given = re.sub(r"\[([^\]]*)\]", r"\1", line)
    return [without, given]


@dataclass
class Walk:
    """The scratch clone: its conf/cluster copy, the daemons, the real servers."""

    root: Path
    redis: ServerProcess
    origin: subprocess.Popen[bytes]
    origin_port: int
    pids: dict[int, int] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)

    @property
    def scratch(self) -> Path:
        return self.root / "warmd-cluster"

    def config(self, node: int) -> Path:
        return self.root / "conf" / "cluster" / f"node{node}.toml"

    def socket(self, node: int) -> Path:
        return self.scratch / f"node{node}" / "admin.sock"

    def localise(self, line: str) -> str:
        """The documented line as it runs here: this venv, the scratch directory."""
        line = line.replace(".venv/bin/", f"{BIN}/").replace("/tmp/warmd-cluster",
                                                               str(self.scratch))
        return line.replace("redis://127.0.0.1:6379", f"redis://{self.redis.address}")

    def shell(self, line: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-c", self.localise(line)], cwd=self.root,
                              capture_output=True, text=True, timeout=timeout_s, check=False)

    def warmctl(self, line: str, node: int = 1) -> subprocess.CompletedProcess[str]:
        """An operations.md `warmctl ...` line against `node`, placeholders filled."""
        words = shlex.split(self.localise(line))
        assert words[0] == "warmctl", line
        filled = [self.values.get(word, word) for word in words[1:]]
        return subprocess.run([str(BIN / "warmctl"), "--socket", str(self.socket(node)), *filled],
                              cwd=self.root, capture_output=True, text=True, timeout=60,
                              check=False)

    def call_json(self, *words: str, node: int = 1) -> object:
        result = subprocess.run([str(BIN / "warmctl"), "--socket", str(self.socket(node)),
                                 *words, "--json"], capture_output=True, text=True, timeout=60,
                                check=False)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def leader(self, node: int = 1) -> int | None:
        try:
            status = self.call_json("status", node=node)
        except (AssertionError, json.JSONDecodeError):
            return None
        assert isinstance(status, dict)
        return status.get("leader_id") or None


def clean(result: subprocess.CompletedProcess[str], line: str, codes: tuple[int, ...] = (0,)
          ) -> str:
    output = result.stdout + result.stderr
    assert result.returncode in codes, f"{line}: exit {result.returncode}\n{output[-2000:]}"
    assert "Traceback" not in output, f"{line}\n{output[-2000:]}"
    return output


def wait_until(predicate: Callable[[], object], what: str, timeout_s: float = SETTLE_S) -> None:
    ends_s = time.monotonic() + timeout_s
    while time.monotonic() < ends_s:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def copy_shipped_configs(root: Path) -> None:
    """conf/cluster as shipped, with free ports for the peers and web listeners."""
    target = root / "conf" / "cluster"
    target.mkdir(parents=True)
    peers = {node: free_port() for node in NODES}
    for node in NODES:
        text = (REPO / "conf" / "cluster" / f"node{node}.toml").read_text()
        for other in NODES:
            text = text.replace(f"127.0.0.1:700{other}", f"127.0.0.1:{peers[other]}")
        text = text.replace(f"127.0.0.1:808{node}", f"127.0.0.1:{free_port()}")
        text = text.replace("/tmp/warmd-cluster", str(root / "warmd-cluster"))
        (target / f"node{node}.toml").write_text(text)


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walk]:
    root = tmp_path_factory.mktemp("clone")
    copy_shipped_configs(root)
    redis = start_redis()
    origin_port = free_port()
    origin = subprocess.Popen([sys.executable, "-m", "warmd.testing.origin", "--port",
                               str(origin_port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    walk = Walk(root, redis, origin, origin_port)
    try:
        yield walk
    finally:
        for pid in walk.pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        origin.kill()
        redis.stop()


def start_from_readme(walk: Walk, lines: list[str]) -> None:
    """Run the secret and start lines as written; note the daemons' pids to stop them later.

    The daemons outlive the shell that started them (as in a terminal), so its output goes
    to files: a pipe would stay open as long as they run."""
    script = walk.localise("\n".join(lines) + "\njobs -p\n")
    out, err = walk.root / "start.out", walk.root / "start.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        shell = subprocess.run(["bash", "-c", script], cwd=walk.root, stdout=stdout,
                               stderr=stderr, timeout=60, check=False)
    assert shell.returncode == 0, err.read_text()[-2000:]
    pids = [int(word) for word in out.read_text().split() if word.isdigit()]
    assert len(pids) == len(NODES), out.read_text()
    walk.pids = dict(zip(NODES, pids, strict=True))
    secret = walk.root / "conf" / "cluster" / "cluster.secret"
    assert secret.stat().st_mode & 0o077 == 0, "the README's umask must keep the secret private"
    wait_until(lambda: all(walk.socket(n).exists() for n in NODES), "the admin sockets")
    wait_until(lambda: walk.leader() is not None, "a leader")


COVERED = {"A local three-node cluster", "Lost quorum: forcing a new cluster from one survivor",
           "Restoring a cluster from a snapshot file", "Tasks, nodes and draining",
           "Warm-up plans, summaries and `warmctl explain`"}


def test_every_shell_block_of_operations_md_is_walked() -> None:
    """A new `sh` block in docs/operations.md must be added to this walk-through."""
    headings = set()
    heading = ""
    for line in (REPO / "docs" / "operations.md").read_text().splitlines():
        if line.startswith("## "):
            heading = line[3:]
        elif line.startswith("```sh"):
            headings.add(heading)
    assert headings == COVERED


def test_readme_cluster_block(walk: Walk) -> None:
    (block,) = code_blocks("README.md", "Run a local cluster")
    lines = command_lines(block)
    assert lines[0].startswith("(umask 077; openssl rand") and "&" in lines[1], lines
    start_from_readme(walk, lines[:2])
    for line in lines[2:]:
        output = clean(walk.shell(line), line)
        assert "leader" in output.lower(), output


def test_readme_service_block(walk: Walk) -> None:
    """The README's zero-config block, appended as written, loaded by `systemctl reload`."""
    (toml,) = code_blocks("README.md", "Point it at a service", "toml")
    for node in NODES:
        log = walk.root / f"access-{node}.log"
        lines = generate_lines(LogSpec(seed=node, days=1.0, requests_per_day=3_000))
        log.write_text("\n".join(lines) + "\n")
        text = (toml.replace("http://127.0.0.1:8000", f"http://127.0.0.1:{walk.origin_port}")
                .replace("127.0.0.1:6379", walk.redis.address)
                .replace("/var/log/nginx/access.log", str(log)))
        with walk.config(node).open("a") as config:
            config.write("\n" + text)
        os.kill(walk.pids[node], signal.SIGHUP)  # what `systemctl reload warmd` sends

    def shipped() -> bool:
        summaries = walk.call_json("summaries")
        rows = summaries.get("summaries", summaries) if isinstance(summaries, dict) else summaries
        return isinstance(rows, list) and len(rows) >= len(NODES)

    wait_until(shipped, "every node's summary")
    subprocess.run(["redis-cli", "-p", str(walk.redis.port), "flushall"], check=True,
                   capture_output=True)  # a flush of the watched cache triggers a plan
    wait_until(lambda: bool(_plans(walk)), "a plan after the flush")
    prose = (REPO / "README.md").read_text().split("## Point it at a service", 1)[1]
    for line in re.findall(r"`(warmctl [^`]+)`", prose.split("\n## ", 1)[0]):
        clean(walk.warmctl(line), line)


def _plans(walk: Walk) -> list[dict[str, object]]:
    plans = walk.call_json("plans")
    rows = plans.get("plans", []) if isinstance(plans, dict) else plans
    return [row for row in rows if isinstance(row, dict)]


def test_operations_local_cluster_block(walk: Walk) -> None:
    """Its start lines are the README's (already running); the checks run here."""
    (block,) = code_blocks("docs/operations.md", "A local three-node cluster")
    lines = command_lines(block)
    (readme,) = code_blocks("README.md", "Run a local cluster")
    assert lines[:2] == command_lines(readme)[:2], "operations.md and README start alike"
    for line in lines[2:]:
        clean(walk.shell(line), line)


# Exit statuses operations.md documents for a command refused on this task (already done):
REFUSED = (0, 1)


def test_operations_tasks_block(walk: Walk) -> None:
    (block,) = code_blocks("docs/operations.md", "Tasks, nodes and draining")
    lines = command_lines(block)
    submit = next(line for line in lines if line.startswith("warmctl tasks submit"))
    output = clean(walk.warmctl(submit + " --json"), submit)
    walk.values["TASK_ID"] = json.loads(output)["task_id"]
    plan = _plans(walk)[0]
    walk.values |= {"PLAN": str(plan["plan_id"]), "RULE": "zero-config", "N": "5",
                    "NODE": "2"}
    leader = walk.leader()
    assert leader is not None
    for line in lines:
        for variant in variants(line):
            codes = REFUSED if re.search(r"retry|cancel", variant) else (0,)
            clean(walk.warmctl(variant, node=leader), variant, codes)  # `plans run`: the leader
    nodes = walk.call_json("nodes")
    assert "2" in json.dumps(nodes)


def test_operations_plans_block(walk: Walk) -> None:
    (block,) = code_blocks("docs/operations.md", "Warm-up plans, summaries and `warmctl explain`")
    for line in command_lines(block):
        for variant in variants(line):
            output = clean(walk.warmctl(variant), variant)
            assert output.strip(), variant


def test_operations_membership_and_snapshots(walk: Walk) -> None:
    """Adding a host (a new id, join = true), promote, transfer, remove; snapshot save."""
    text = walk.config(3).read_text()
    port = free_port()
    four = re.sub(r"id = 3\n", "id = 4\njoin = true\n", text, count=1)
    four = re.sub(r'listen = "127\.0\.0\.1:\d+"\ndata_dir = "[^"]*"',
                  f'listen = "127.0.0.1:{port}"\ndata_dir = "{walk.scratch}/node4/data"', four)
    four = four.replace(f"{walk.scratch}/node3/admin.sock", f"{walk.scratch}/node4/admin.sock")
    four = re.sub(r'\[web\]\nlisten = "[^"]*"', "[web]\nenabled = false", four)
    walk.config(4).write_text(four)
    process = subprocess.Popen([str(BIN / "warmd"), "run", "--config", str(walk.config(4))],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    walk.pids[4] = process.pid
    wait_until(lambda: walk.socket(4).exists(), "node 4's admin socket")
    clean(walk.warmctl(f"warmctl add-learner 4 127.0.0.1:{port}"), "add-learner")

    def caught_up() -> bool:
        return walk.warmctl("warmctl promote 4").returncode == 0

    wait_until(caught_up, "promote 4 (caught up)")
    leader = walk.leader()
    assert leader is not None
    clean(walk.warmctl("warmctl transfer-leader", node=leader), "transfer-leader")
    wait_until(lambda: walk.leader() not in (None, leader), "a new leader")
    clean(walk.warmctl("warmctl remove 4"), "remove 4")
    snapshot_file = walk.scratch / "node1" / "backup.snap"
    clean(walk.warmctl("warmctl snapshot"), "snapshot")
    clean(walk.warmctl(f"warmctl snapshot save {snapshot_file}"), "snapshot save")
    assert snapshot_file.stat().st_size > 0
    walk.values["FILE"] = str(snapshot_file)


def test_operations_recovery_blocks(walk: Walk) -> None:
    """Lost quorum and restore from a snapshot file, on the stopped nodes of the walk."""
    for pid in walk.pids.values():  # `systemctl stop warmd`: SIGTERM, a clean stop
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    wait_until(lambda: all(_exited(pid) for pid in walk.pids.values()), "the daemons to exit")
    lost, restore = (command_lines(block) for block in (
        code_blocks("docs/operations.md", "Lost quorum: forcing a new cluster from one survivor")
        + code_blocks("docs/operations.md", "Restoring a cluster from a snapshot file")))
    recover = next(line for line in lost if line.startswith("warmd recover"))
    clean(_recover(walk, recover, walk.config(1)), recover)
    _start_and_lead(walk, 1)

    restored = walk.root / "conf" / "cluster" / "restored.toml"  # beside the secret
    data = walk.scratch / "restored" / "data"
    restored.write_text(walk.config(2).read_text().replace(
        f"{walk.scratch}/node2/data", str(data)).replace(
        f"{walk.scratch}/node2/admin.sock", f"{walk.scratch}/restored/admin.sock"))
    data.mkdir(parents=True, mode=0o700)  # the `install -d -m 0700` line: an empty directory
    assert any(line.startswith("mv ") and "install -d -m 0700" in line for line in restore)
    from_snapshot = next(line for line in restore if line.startswith("warmd recover"))
    clean(_recover(walk, from_snapshot, restored), from_snapshot)
    os.kill(walk.pids[1], signal.SIGTERM)  # the survivor of the first recovery is done
    wait_until(lambda: _exited(walk.pids[1]), "the survivor to exit")
    process = subprocess.Popen([str(BIN / "warmd"), "run", "--config", str(restored)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    walk.pids[5] = process.pid
    restored_socket = walk.scratch / "restored" / "admin.sock"
    wait_until(restored_socket.exists, "the restored node's socket")
    show = [str(BIN / "warmctl"), "--socket", str(restored_socket), "tasks", "show",
            walk.values["TASK_ID"]]

    def shown() -> bool:  # once the restored node has elected itself
        return subprocess.run(show, capture_output=True, text=True, timeout=60,
                              check=False).returncode == 0

    wait_until(shown, "the restored node to answer")
    result = subprocess.run(show, capture_output=True, text=True, timeout=60, check=False)
    assert walk.values["TASK_ID"] in clean(result, "tasks show on the restored node")


def _exited(pid: int) -> bool:
    """The process is gone or a zombie (the daemons started by the README's shell are not
    our children; those we started are reaped by Popen later)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def _recover(walk: Walk, line: str, config: Path) -> subprocess.CompletedProcess[str]:
    words = shlex.split(line)
    words = [str(config) if word == "/etc/warmd/warmd.toml" else
             walk.values.get("FILE", word) if word == "backup.snap" else word for word in words]
    return subprocess.run([str(BIN / "warmd"), *words[1:]], capture_output=True, text=True,
                          timeout=60, check=False)


def _start_and_lead(walk: Walk, node: int) -> None:
    """`systemctl start warmd` on the survivor: it leads a cluster of one."""
    process = subprocess.Popen([str(BIN / "warmd"), "run", "--config", str(walk.config(node))],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    walk.pids[node] = process.pid
    wait_until(lambda: walk.socket(node).exists(), "the survivor's socket")
    wait_until(lambda: walk.leader(node) == node, "the survivor to lead alone")
