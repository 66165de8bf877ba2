"""The daemon: start-up -> serve -> shutdown of one warmd node.

Start-up opens the data directory (verifying every record: a corrupt log refuses to start),
the peer transport, the Raft driver and the admin socket, in that order, and tells systemd
READY=1 once a leader is known (a node with `join = true` is ready as soon as its sockets
are open: it waits to be added). Signals: SIGTERM/SIGINT stop cleanly (admin socket closed
first, then the driver finishes its Ready, peers are closed, the log is synced); a second
one exits at once. SIGHUP re-reads the config file and applies what `reload_plan` says is
reloadable (logging now; the rest is logged as needing a restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import random
import signal
import sys
from dataclasses import dataclass, replace

import structlog

from warmd import __version__
from warmd import config as config_module
from warmd import logging as warmd_logging
from warmd.admin.server import AdminServer
from warmd.clock import Clock, SystemClock
from warmd.config import SERVICE_SECTIONS, Config
from warmd.errors import ConfigError, InvariantViolation, WarmdError
from warmd.hooks.registry import HookRegistry
from warmd.raft.config import RaftConfig
from warmd.raft.core import RaftNode
from warmd.raft.types import ConfState
from warmd.runtime import preflight
from warmd.runtime.access.audit import AuditRecorder
from warmd.runtime.access.tokens import TokenAuthority
from warmd.runtime.commands.access import AccessCommands
from warmd.runtime.commands.analysis import AnalysisCommands
from warmd.runtime.commands.bench_load import register_bench_commands
from warmd.runtime.commands.bench_plan import register_bench_plan
from warmd.runtime.commands.cluster import ClusterCommands
from warmd.runtime.commands.health import HealthCommands
from warmd.runtime.commands.plugins import PluginCommands
from warmd.runtime.commands.rules import RulesCommands
from warmd.runtime.commands.tasks import TaskCommands
from warmd.runtime.execute.executor import ExecutorOptions
from warmd.runtime.leader.replication import ReplicationReporter
from warmd.runtime.limits import raise_open_files_limit
from warmd.runtime.node.applier import Applier
from warmd.runtime.node.disk import DiskOptions, DiskStorage
from warmd.runtime.node.driver import Driver, DriverOptions
from warmd.runtime.node.status import DriverStatus
from warmd.runtime.node.tls import tls_contexts
from warmd.runtime.node.transport import TcpTransport, TransportOptions
from warmd.runtime.observe import Observability
from warmd.runtime.sdnotify import SdNotifier, run_watchdog, watchdog_settings
from warmd.runtime.services import WarmupServices
from warmd.statemachine.machine import StateMachine
from warmd.statemachine.topics import Topic

_log = warmd_logging.get_logger("warmd.daemon")
EXIT_SOFTWARE = 70  # sysexits EX_SOFTWARE: the driver failed (disk, invariant)


@dataclass(frozen=True, slots=True)
class Components:
    """What serve() starts and stops, in start order."""

    storage: DiskStorage
    transport: TcpTransport
    driver: Driver
    admin: AdminServer
    analysis: AnalysisCommands
    plugins: HookRegistry
    tasks: TaskCommands
    authority: TokenAuthority


def open_storage(config: Config) -> DiskStorage:
    """Open the data directory; the founding configuration is [peers] unless joining.

    Raises:
        DiskCorruption: a damaged record (the message names the file and offset).
        DiskFailed: the directory cannot be read or repaired.
    """
    founding = ConfState() if config.node.join else ConfState(
        voters=tuple(peer.node_id for peer in config.peers))
    options = DiskOptions(segment_size_bytes=config.raft.segment_bytes)
    return DiskStorage.open(config.node.data_dir, options, conf_state=founding)


def build(config: Config, storage: DiskStorage, clock: Clock) -> Components:
    """Wire transport, core, applier and driver for this config (nothing started yet), and
    load the plugins of the `warmd.hooks` entry points."""
    settings = config.raft
    server_ssl, client_ssl = tls_contexts(config)
    transport = TcpTransport(TransportOptions(
        cluster_id=config.cluster.cluster_id, node_id=config.node.node_id,
        secret=config.cluster.secret, listen_host=config.node.listen.host,
        listen_port=config.node.listen.port, max_frame_bytes=settings.max_frame_bytes,
        server_ssl=server_ssl, client_ssl=client_ssl,
    ), clock=clock)
    raft_config = RaftConfig(
        node_id=config.node.node_id, election_timeout_ticks=settings.election_timeout_ticks,
        heartbeat_ticks=settings.heartbeat_ticks, pre_vote=settings.pre_vote,
        check_quorum=settings.check_quorum, max_entry_bytes=settings.max_entry_bytes,
    )
    node = RaftNode(raft_config, storage, random.Random())
    applier = Applier(StateMachine(), config.peer_addresses(), clock)
    options = DriverOptions(
        tick_interval_s=settings.tick_interval_s,
        proposal_timeout_s=settings.proposal_timeout_ms / 1000,
        snapshot_interval_entries=settings.snapshot_interval_entries,
        client_id=f"node-{config.node.node_id}-{os.getpid()}-{random.getrandbits(32):08x}",
    )
    driver = Driver(node, storage, transport, applier, options, clock)
    plugins = HookRegistry()
    load_plugins(plugins)
    # Tokens are checked and every mutation audited in the one path of all interfaces.
    authority = TokenAuthority(lambda: driver.state, clock)
    admin = AdminServer(config.admin.socket_path, group_id=config.admin.group_id,
                        authenticate=authority.for_socket, recorder=AuditRecorder(driver))
    AccessCommands(driver).register(admin)
    ClusterCommands(driver, plugins).register(admin)
    tasks = TaskCommands(driver)
    tasks.register(admin)
    RulesCommands(driver, config, plugins).register(admin)
    PluginCommands(plugins).register(admin)
    HealthCommands(driver).register(admin)
    analysis = AnalysisCommands(driver, config, plugins=plugins)
    analysis.register(admin)
    register_bench_commands(admin, driver)
    register_bench_plan(admin, driver)
    return Components(storage, transport, driver, admin, analysis, plugins, tasks, authority)


def load_plugins(registry: HookRegistry) -> None:
    """(Re)load the entry points; log each plugin, and each that failed with its reason."""
    registry.load_entry_points()
    for info in registry.entry_points.values():
        if info.error:
            _log.error("plugin_load_failed", entry_point=info.entry_point, package=info.package,
                       version=info.version, error=info.error)
        else:
            _log.info("plugin_loaded", plugin=info.name, kind=info.kind, package=info.package,
                      version=info.version)


def status_line(status: DriverStatus) -> str:
    """The STATUS= text systemd shows: role, term, leader."""
    leader = status.leader_id or "unknown"
    return f"{status.role}, term {status.term}, leader {leader}, applied {status.applied_index}"


class Daemon:
    """One running node: `await Daemon(config).serve()` returns the exit status."""

    def __init__(self, config: Config, clock: Clock | None = None) -> None:
        self.config = config
        self._clock = clock or SystemClock()  # the one clock every service of the node reads
        self._notifier = SdNotifier.from_environment()
        self._stop = asyncio.Event()
        self._signals = 0
        self._components: Components | None = None
        self._services: WarmupServices | None = None
        self._services_lock = asyncio.Lock()  # a reload restarts them one at a time
        self._reloads: set[asyncio.Task[None]] = set()

    async def serve(self) -> int:
        """Start everything, wait for a stop signal or a driver failure, stop everything.

        Whatever fails during start-up (a socket in use, a service that cannot start),
        every part already started is stopped before the error propagates, so the process
        exits with its status instead of waiting on a worker process or a tailer.

        Raises:
            ConfigError: a setting the node cannot start with (checked before binding).
        """
        preflight.check(self.config)
        storage = open_storage(self.config)
        components = build(self.config, storage, self._clock)
        self._components = components
        observability = Observability(self.config, components.driver, lambda: self._services,
                                      components.admin, components.authority)
        background: list[asyncio.Task[None]] = []
        failed = False
        try:
            await components.transport.start()
            await components.driver.start()
            await components.admin.start()
            await observability.start()
            self._install_signals()
            components.driver.on_state_change = \
                lambda status: self._notifier.status(status_line(status))
            background = self._background(components)
            self._start_services(components)
            failed = await self._wait_stop(components.driver)
        finally:
            for task in [*background, *self._reloads]:
                task.cancel()
            await asyncio.gather(*background, *self._reloads, return_exceptions=True)
            await observability.close()
            await self._stop_services()
            self._notifier.stopping("stopping")
            await self._shutdown(components)
        return EXIT_SOFTWARE if failed else 0

    def _background(self, components: Components) -> list[asyncio.Task[None]]:
        """The daemon's own tasks: READY=1 once a leader is known, the leader's replication
        reports (any node's /cluster shows them), and the watchdog."""
        tasks = [asyncio.create_task(self._announce_ready(components.driver)),
                 asyncio.create_task(ReplicationReporter(components.driver, __version__).run())]
        watchdog = watchdog_settings()
        if watchdog is not None:
            tasks.append(asyncio.create_task(
                run_watchdog(self._notifier, watchdog, self._clock)))
        return tasks

    async def _wait_stop(self, driver: Driver) -> bool:
        """Wait for a stop signal or the driver's end; True when the driver failed."""
        finished = driver.finished
        if finished is None:
            raise InvariantViolation("the driver was not started")  # a wiring bug
        stop_wait = asyncio.create_task(self._stop.wait())
        await asyncio.wait([stop_wait, finished], return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        return finished.done()

    # ------------------------------------------------------------------ warm-up services

    def _start_services(self, components: Components) -> None:
        """The pipeline, executor, watcher and leader loops, from the current config.

        Raises:
            ConfigError: a cache or source the daemon cannot use (nothing is left running:
                `_stop_services` closes whatever was built).
        """
        services = WarmupServices(self.config, components.driver,
                                  ExecutorOptions.from_config(self.config.executor),
                                  components.plugins, self._clock)
        self._services = services
        services.start()
        components.analysis.attach_pipeline(
            services.pipeline.status if services.pipeline is not None else None)
        if services.watcher is not None:
            components.analysis.attach_cache_status(services.watcher.is_down)
        if services.effects is not None:
            components.tasks.attach_effects(services.effects.effects)
        components.analysis.attach_planner(
            services.planning.plan_now if services.planning is not None else None)

    async def _stop_services(self) -> None:
        services, self._services = self._services, None
        if services is not None:
            await services.close()

    async def _restart_services(self, sections: tuple[str, ...]) -> None:
        """Stop the warm-up services and start them again on the reloaded config. Running
        tasks stop with them and are adopted again from their checkpoints."""
        async with self._services_lock:
            if self._components is None or self._stop.is_set():
                return
            await self._stop_services()
            self._start_services(self._components)
            _log.info("services_restarted", sections=list(sections))

    async def _announce_ready(self, driver: Driver) -> None:
        """READY=1 once a leader is known (or at once when waiting to join)."""
        leadership = driver.changes.subscribe({Topic.LEADERSHIP})
        try:
            while not self.config.node.join and driver.leader_id == 0:
                await leadership.wait()
        finally:
            leadership.close()
        _settle_heap()
        status = driver.status()
        self._notifier.ready(status_line(status))
        _log.info("daemon_ready", node_id=status.node_id, role=status.role, term=status.term,
                  leader_id=status.leader_id)

    async def _shutdown(self, components: Components) -> None:
        """Stop accepting, finish and stop the driver, close peers, sync the log."""
        with contextlib.suppress(WarmdError, OSError):
            await components.admin.close()
        await components.driver.stop()
        await components.transport.close()
        components.storage.close()
        self._notifier.close()
        _log.info("daemon_stopped", node_id=self.config.node.node_id)

    # ------------------------------------------------------------------ signals

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._on_stop_signal, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, self._on_stop_signal, "SIGINT")
        loop.add_signal_handler(signal.SIGHUP, self._on_reload_signal)

    def _on_stop_signal(self, name: str) -> None:
        self._signals += 1
        if self._signals > 1:
            _log.warning("forced_exit", signal=name)
            os._exit(1)  # the operator insists; the log is crash-safe by design
        _log.info("shutdown_requested", signal=name)
        self._stop.set()

    def _on_reload_signal(self) -> None:
        self._notifier.reloading()
        try:
            candidate = config_module.load(self.config.origin)
        except ConfigError as error:
            _log.error("reload_refused", error=str(error))
            self._notifier.ready()
            return
        plan = config_module.reload_plan(self.config, candidate)
        if "logging" in plan.applied:
            warmd_logging.configure(candidate.logging.level, candidate.logging.format)
        if self._components is not None:
            load_plugins(self._components.plugins)
        if plan.needs_restart:
            _log.warning("reload_needs_restart", sections=list(plan.needs_restart))
        _log.info("config_reloaded", applied=list(plan.applied))
        self.config = _merge_reloadable(self.config, candidate, plan.applied)
        restarted = tuple(name for name in plan.applied if name in SERVICE_SECTIONS)
        if restarted:
            reload = asyncio.create_task(self._restart_services(restarted))
            self._reloads.add(reload)
            reload.add_done_callback(self._reloads.discard)
        self._notifier.ready()


# The young generation's threshold (CPython's default is 700 allocations). Measured on the
# entry follower of bench/raft_cpu_probe.py (2026-12-07, docs/benchmarks.md "Session 7"):
# each request keeps some 20-30 objects alive across a collection, so at 700 a young
# collection ran every 25-40 writes and promoted them; at 10,000 the collector's CPU per
# write fell from 5.2 to 3.0 us at 1,024 in flight (64: 1.8 to 0), memory held a little longer.
GC_YOUNG_THRESHOLD = 10_000


def _settle_heap() -> None:
    """Take what start-up built (modules, config, the recovered state: ~67,000 objects)
    out of the cyclic collector's scans, and collect the young generation less often.

    A full collection walked all of it (~25 ms each, several a second under a client's
    load: 8-11 us per write on the entry follower), though those objects live as long as
    the process and are freed, if ever, by reference counting. The young and middle
    generations are collected first, so recent garbage is not frozen; not a full
    collection, which over a big recovered state would stall the loop for seconds (what
    start-up left in the old generation stays, once).
    """
    gc.collect(1)
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def _merge_reloadable(current: Config, candidate: Config, sections: tuple[str, ...]) -> Config:
    """The running config with only the reloaded sections taken from the candidate."""
    return replace(current, **{name: getattr(candidate, name) for name in sections})


def run(config: Config) -> int:
    """Run the daemon on uvloop until it stops; returns the exit status."""
    import uvloop

    warmd_logging.configure(config.logging.level, config.logging.format)
    files = raise_open_files_limit()
    # Every event of this process names its node (tasks and threads inherit the context), so
    # logs gathered from several hosts, or three nodes on one, can be told apart.
    structlog.contextvars.bind_contextvars(node_id=config.node.node_id)
    _log.info("daemon_starting", node_id=config.node.node_id, config=config.origin,
              pid=os.getpid(), python=sys.version.split()[0], open_files_max=files.after,
              open_files_max_before=files.before)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(Daemon(config).serve())
