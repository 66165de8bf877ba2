"""The daemon's rule commands on the admin socket: `rules-reload`, `rules-show`,
`rules-history`, and `rules-enable`/`rules-disable` of one rule by name.

A reload is checked on the node that receives it, against the caches of this node's
config, before anything is proposed: a bad set is answered with the checker's errors and
the committed set stays. A good set is committed through Raft as one `SetRules` entry, so
every node holds the same files under the same version. At start the daemon proposes the
files of `[rules] files` once, only when the cluster has no rule set yet (a set reloaded
later by an operator is not overwritten by a restarting node). A reload and a switch carry
the actor's name into the log, so the history says who.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from warmd.access import Actor
from warmd.admin.protocol import ErrorCode
from warmd.admin.server import AdminServer
from warmd.config import Config
from warmd.errors import AdminError, WarmdError
from warmd.hooks.registry import HookRegistry
from warmd.logging import get_logger
from warmd.raft.errors import NotLeader, ProposalDropped
from warmd.rules.compile import KnownNames, check_files
from warmd.rules.errors import render_all
from warmd.runtime.commands.errors import propose_applied, raft_errors
from warmd.runtime.leader.rule_names import known_names
from warmd.runtime.node.driver import Driver, DriverStopped, ProposalTimeout
from warmd.statemachine.commands import InvalidCommand
from warmd.statemachine.ruleset import SetRuleEnabled, SetRules

_log = get_logger("warmd.rules")
START_POLL_S = 0.2
START_ATTEMPTS = 50


def check_rule_files(files: Sequence[tuple[str, str]], known: KnownNames) -> str:
    """Every error of the set, rendered like `warmctl rules check` ("" when the set is valid)."""
    result = check_files(files, known)
    if result.ruleset is not None:
        return ""
    texts = dict(files)
    return "\n\n".join(render_all(name, texts[name], diagnostics)
                       for name, diagnostics in result.diagnostics.items() if diagnostics)


def read_files(config: Config) -> list[tuple[str, str]]:
    """The configured rule files' names (base names: the version must not depend on where a
    node keeps them) and texts.

    Raises:
        AdminError: a file cannot be read or is not UTF-8.
    """
    files = []
    for path in config.rules.files:
        try:
            files.append((path.name, path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as error:
            raise AdminError(ErrorCode.FAILED, f"{path}: cannot read: {error}") from None
    return files


def _files_arg(args: Mapping[str, Any]) -> list[tuple[str, str]] | None:
    files = args.get("files")
    if files is None:
        return None
    if not isinstance(files, list) or not all(
            isinstance(entry, list) and len(entry) == 2
            and all(isinstance(part, str) for part in entry) for entry in files):
        raise AdminError(ErrorCode.BAD_REQUEST, "files must be a list of [name, text] pairs")
    return [(name, text) for name, text in files]


class RulesCommands:
    """Handlers bound to one driver and config; `register(server)` adds them."""

    def __init__(self, driver: Driver, config: Config, plugins: HookRegistry | None = None) -> None:
        self._driver = driver
        self._config = config
        self._plugins = plugins or HookRegistry()
        self._start_task: asyncio.Task[None] | None = None

    def register(self, server: AdminServer) -> None:
        server.register("rules-reload", self.reload, with_actor=True,
                        summary="check rule files here, then commit them as the cluster's set")
        server.register("rules-show", self.show, summary="the committed rule set: version and text")
        server.register("rules-history", self.history,
                        summary="the committed rule set's versions: index, time, actor, digest")
        for command, enabled in (("rules-enable", True), ("rules-disable", False)):
            server.register(command, self._switch(enabled), with_actor=True,
                            summary=f"{command.removeprefix('rules-')} one rule of the set by name")
        if self._config.rules.files:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # built outside the daemon's loop (tests of build()): no start load
                return
            self._start_task = loop.create_task(self.load_configured())

    @property
    def _known(self) -> KnownNames:
        """Read at each check: a SIGHUP may have loaded plugins since the last one."""
        return known_names(self._config, self._plugins.names())

    @property
    def _committed(self) -> Any:
        return self._driver.state.rules

    async def reload(self, args: Mapping[str, Any], actor: Actor) -> dict[str, Any]:
        files = _files_arg(args)
        if files is None:
            files = read_files(self._config)
        if not files:
            raise AdminError(ErrorCode.BAD_REQUEST, "no rule files given and none configured")
        names = [name for name, _ in files]
        if len(set(names)) != len(names):
            raise AdminError(ErrorCode.BAD_REQUEST, f"rule file names must differ: {names}")
        previous = self._committed.version if self._committed else None
        errors = check_rule_files(files, self._known)
        if errors:
            return {"ok": False, "errors": errors, "version": previous}
        try:
            command = SetRules.of(files, self._driver.clock.wall_ms(), actor=actor.name)
        except InvalidCommand as error:
            raise AdminError(ErrorCode.BAD_REQUEST, f"rule set refused: {error}") from None
        version = await propose_applied(self._driver, command)
        return {"ok": True, "version": version, "previous": previous,
                "files": [name for name, _ in files]}

    async def show(self, args: Mapping[str, Any]) -> dict[str, Any]:
        async with raft_errors():
            read_index = await self._driver.read()
        committed = self._committed
        if committed is None:
            return {"read_index": read_index, "version": None, "files": []}
        return {"read_index": read_index, "version": committed.version, "index": committed.index,
                "set_ms": committed.set_ms,
                "files": [{"name": name, "text": text} for name, text in committed.files]}

    async def history(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """The kept versions, newest first, and the disabled rules (no texts: `rules-show`)."""
        async with raft_errors():
            read_index = await self._driver.read()
        state = self._driver.state
        return {"read_index": read_index, "versions": [
            {"version": version.version, "index": version.index, "set_ms": version.set_ms,
             "actor": version.actor, "files": list(version.file_names),
             "text_kept": bool(version.texts)} for version in reversed(state.rule_history)],
            "disabled": [{"name": rule.name, "index": rule.index, "set_ms": rule.set_ms,
                          "actor": rule.actor} for rule in state.disabled_rules.values()]}

    def _switch(self, enabled: bool) -> Any:
        async def switch(args: Mapping[str, Any], actor: Actor) -> dict[str, Any]:
            return await self.set_enabled(args, actor, enabled)
        return switch

    async def set_enabled(self, args: Mapping[str, Any], actor: Actor,
                          enabled: bool) -> dict[str, Any]:
        """Switch one rule of the committed set on or off through Raft. A name that is not
        a rule of the set is refused here (the state machine cannot compile rules)."""
        name = args.get("name")
        if not isinstance(name, str) or not name:
            raise AdminError(ErrorCode.BAD_REQUEST, "name must be a rule's name")
        async with raft_errors():
            await self._driver.read()
        if enabled is False and name not in self._rule_names():
            raise AdminError(ErrorCode.BAD_REQUEST,
                             f"no rule {name!r} in the committed set (rules: "
                             f"{', '.join(sorted(self._rule_names())) or 'none'})")
        command = SetRuleEnabled(name=name, enabled=enabled,
                                 now_ms=self._driver.clock.wall_ms(), actor=actor.name)
        await propose_applied(self._driver, command)
        return {"name": name, "enabled": enabled}

    def _rule_names(self) -> set[str]:
        """The rule names of the committed set as this node compiles it."""
        committed = self._committed
        if committed is None:
            return set()
        ruleset = check_files(committed.files, self._known).ruleset
        return {rule.name for rule in ruleset.rules} if ruleset is not None else set()

    async def load_configured(self) -> None:
        """Propose the configured files once a leader is known, unless a set is committed."""
        try:
            files = read_files(self._config)
        except AdminError as error:
            _log.error("rules_unreadable", error=str(error))
            return
        errors = check_rule_files(files, self._known)
        if errors:
            _log.error("rules_invalid", errors=errors)
            return
        while self._driver.leader_id == 0:  # not started yet, or no leader elected yet
            await self._driver.clock.sleep(START_POLL_S)
        for _ in range(START_ATTEMPTS):
            try:
                await self._driver.read()
                if self._committed is None:
                    await self._driver.propose(SetRules.of(files, self._driver.clock.wall_ms()))
                _log.info("rules_loaded", version=self._committed.version if self._committed else None)
                return
            except DriverStopped:
                return
            except (NotLeader, ProposalDropped, ProposalTimeout, WarmdError):
                await self._driver.clock.sleep(START_POLL_S)
        _log.error("rules_not_loaded", reason="no leader accepted the configured rule set")
