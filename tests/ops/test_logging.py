"""warmd.logging: JSON lines off a terminal (journald), readable text on one, levels, env."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import structlog
from structlog.testing import capture_logs

import warmd.logging as warmd_logging

CHILD = """
import logging, warmd.logging as wl
print(wl.configure("info"), flush=True)
log = wl.get_logger("warmd.test", node_id=3)
log.info("became_leader", term=7)
log.debug("hidden_at_info")
logging.getLogger("aiohttp.access").warning("stdlib says %s", "hello")
try:
    1 / 0
except ZeroDivisionError:
    log.exception("apply_failed", index=12)
"""


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Leave structlog and the root logger as they were, so other tests are unaffected."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def run_child(env_extra: dict[str, str] | None = None) -> tuple[str, list[dict]]:
    """Run CHILD with stderr on a pipe (not a TTY); return its stdout and its stderr lines."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARMD_LOG")}
    env.update(env_extra or {})
    result = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, check=True,
        timeout=60,
    )
    return result.stdout.strip(), [json.loads(line) for line in result.stderr.splitlines()]


def test_json_lines_when_stderr_is_not_a_terminal() -> None:
    """Under journald (a pipe), every event is one JSON object with level, logger and fields."""
    chosen, events = run_child()
    assert chosen == "json"
    assert [event["event"] for event in events] == [
        "became_leader", "stdlib says hello", "apply_failed"
    ]
    leader = events[0]
    assert (leader["term"], leader["node_id"], leader["level"]) == (7, 3, "info")
    assert leader["logger"] == "warmd.test" and leader["timestamp"].endswith("Z")
    assert (events[1]["logger"], events[1]["level"]) == ("aiohttp.access", "warning")
    assert events[2]["exception"][0]["exc_type"] == "ZeroDivisionError"


def test_environment_overrides_the_level() -> None:
    """WARMD_LOG_LEVEL=debug lets debug events through that the configured info level hides."""
    _, events = run_child({"WARMD_LOG_LEVEL": "debug"})
    assert "hidden_at_info" in [event["event"] for event in events]


def test_readable_console_lines_on_a_terminal() -> None:
    """On a real terminal (a pty) the output is a readable line, not JSON."""
    controller, terminal = os.openpty()
    try:
        with os.fdopen(terminal, "w", closefd=False) as stream:
            assert warmd_logging.configure("info", "auto", stream=stream) == "console"
            warmd_logging.get_logger("warmd.test").info("became_leader", term=7)
            stream.flush()
        output = os.read(controller, 4096).decode()
    finally:
        os.close(controller)
        os.close(terminal)
    assert "became_leader" in output and "term=7" in output and "[warmd.test]" in output
    assert not output.lstrip().startswith("{")


def test_explicit_format_wins_over_detection() -> None:
    """format = json on any stream gives JSON; console on a pipe gives text."""
    assert warmd_logging.resolve_format("json", sys.stderr) == "json"
    buffer = io.StringIO()
    assert warmd_logging.configure("info", "console", stream=buffer) == "console"
    warmd_logging.get_logger().warning("disk_nearly_full", free_bytes=10)
    assert "disk_nearly_full" in buffer.getvalue() and "free_bytes=10" in buffer.getvalue()


def test_level_filters_events() -> None:
    """At level warning, info events are dropped and warnings are written."""
    buffer = io.StringIO()
    warmd_logging.configure("warning", "json", stream=buffer)
    log = warmd_logging.get_logger("warmd.test")
    log.info("not_written")
    log.warning("written", reason="x")
    events = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert [event["event"] for event in events] == ["written"]


@pytest.mark.parametrize(("level", "output_format"), [("loud", "auto"), ("info", "xml")])
def test_bad_level_or_format_is_a_clear_error(level: str, output_format: str) -> None:
    """An unknown level or format raises ValueError naming the bad value."""
    with pytest.raises(ValueError, match=f"{level if level == 'loud' else output_format}"):
        warmd_logging.configure(level, output_format, stream=io.StringIO())


def test_capture_logs_sees_structured_events_after_configure() -> None:
    """Tests can assert on events as dicts with structlog.testing.capture_logs after configure()."""
    warmd_logging.configure("info", "json", stream=io.StringIO())
    with capture_logs() as captured:
        warmd_logging.get_logger("warmd.test").info("became_leader", term=2)
    assert captured == [{"event": "became_leader", "term": 2, "log_level": "info"}]


LOCALS_CHILD = """
import warmd.logging as wl
from warmd.runtime.node.transport import TransportOptions
print(wl.configure("info"), flush=True)
def handshake(options):
    secret_copy = options.secret.reveal().decode()
    raise RuntimeError("handshake broke")
try:
    handshake(TransportOptions(cluster_id="c", node_id=1, secret=b"LOCAL-SECRET-0123456789"))
except RuntimeError:
    wl.get_logger("warmd.test").exception("transport_failed")
"""


@pytest.mark.parametrize("output_format", ["json", "console"])
def test_exceptions_carry_type_message_and_stack_but_never_frame_locals(output_format: str) -> None:
    """A logged exception shows its type, message and frames; no local variable's value."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARMD_LOG")}
    env["WARMD_LOG_FORMAT"] = output_format
    result = subprocess.run([sys.executable, "-c", LOCALS_CHILD], capture_output=True,
                            text=True, env=env, check=True, timeout=60)
    assert "LOCAL-SECRET" not in result.stderr
    if output_format == "json":
        (event,) = [json.loads(line) for line in result.stderr.splitlines()]
        (exception,) = event["exception"]
        assert (exception["exc_type"], exception["exc_value"]) == ("RuntimeError", "handshake broke")
        assert [frame["name"] for frame in exception["frames"]] == ["<module>", "handshake"]
        assert all("locals" not in frame for frame in exception["frames"])
    else:
        assert "RuntimeError: handshake broke" in result.stderr
        assert 'in handshake' in result.stderr


def test_a_secret_shows_as_stars() -> None:
    """TransportOptions and the loaded config print the cluster secret as ***."""
    from warmd.runtime.node.transport import TransportOptions
    from warmd.secret import Secret

    options = TransportOptions(cluster_id="c", node_id=1, secret=b"0123456789abcdef-secret")
    assert "0123456789abcdef" not in repr(options) and "secret=***" in repr(options)
    assert str(options.secret) == repr(options.secret) == "***"
    assert options.secret == Secret(b"0123456789abcdef-secret") != Secret(b"x" * 23)
