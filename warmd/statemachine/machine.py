"""`StateMachine.apply(index, command)`: the one pure function every replica runs on the log.

It asks lifecycle.py whether a task may change, then makes the change; it keeps the node
registry and client sessions. A bad command is answered with `Rejected(reason)`, never an
exception: the same entry must have the same effect (none) on every replica.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator
from dataclasses import replace
from typing import Any

from warmd.errors import invariant
from warmd.statemachine import snapshot as snapshot_format
from warmd.statemachine.access import AddToken, RecordAudit, RevokeToken
from warmd.statemachine.commands import (
    TASK_COMMANDS,
    AddPlanPart,
    Assign,
    Batch,
    Cancel,
    Command,
    DeclareDead,
    Drain,
    Expire,
    Fail,
    Finish,
    Heartbeat,
    InvalidCommand,
    MarkReady,
    MarkWaiting,
    OpenPlan,
    PlannedTask,
    RecordEffect,
    RegisterNode,
    Release,
    RemoveNode,
    Rerun,
    Session,
    Skip,
    Start,
    SubmitPlan,
    SubmitTask,
    decode_command,
)
from warmd.statemachine.lifecycle import EFFECTS, TERMINAL_STATES, Refusal, TaskState, decide
from warmd.statemachine.plan_parts import STAGED_PLANS_MAX, StagedPlan, check_complete, check_part
from warmd.statemachine.plans import FINISHED_KEYS_KEPT, PLANS_KEPT, PlanEffect, PlanRecord
from warmd.statemachine.replication import ReplicationRecord, ReportReplication, refusal
from warmd.statemachine.ruleset import (
    DISABLED_RULES_MAX,
    DisabledRule,
    RuleSetRecord,
    RuleVersion,
    SetRuleEnabled,
    SetRules,
    add_version,
)
from warmd.statemachine.state import (
    ATTEMPTS_KEPT,
    Applied,
    ApplyResult,
    AttemptRecord,
    MachineState,
    NodeRecord,
    Rejected,
    SessionRecord,
    TaskNote,
    TaskRecord,
    result_to_wire,
)
from warmd.statemachine.summaries import ReportSummary, SummaryRecord, summary_key
from warmd.statemachine.topics import EVERYTHING, TOPICS_OF, Topic

# Constants, not settings: replicas with different limits would evict differently and diverge.
SESSIONS_MAX = 10_000
FINISHED_KEPT = 5_000  # finished tasks outside plans kept for `tasks ls/show`
PRUNE_BATCH = 500  # checked and pruned once per 500 finished tasks (one sort each time)


def _record_attempt(task: TaskRecord, command: Any, index: int) -> None:
    """Note on the open attempt that its owner started it, or how it ended (and at which
    Raft index)."""
    if not task.attempts or task.attempts[-1].ended_ms:
        return
    current = task.attempts[-1]
    ended = {"ended_ms": command.now_ms, "ended_index": index}
    if isinstance(command, Start):
        current = replace(current, started_ms=command.now_ms, started_index=index)
    elif isinstance(command, Finish):
        current = replace(current, outcome=TaskState.SUCCEEDED.value, **ended)
    elif isinstance(command, Fail):
        current = replace(current, outcome=TaskState.FAILED.value, error=command.error, **ended)
    elif isinstance(command, Release):
        current = replace(current, outcome="RELEASED", error=command.reason, **ended)
    elif isinstance(command, (Cancel, Expire)):
        outcome = TaskState.CANCELLED if isinstance(command, Cancel) else TaskState.EXPIRED
        current = replace(current, outcome=outcome.value, error=getattr(command, "reason", ""),
                          **ended)
    else:
        return
    task.attempts = (*task.attempts[:-1], current)


def _task_note(task: TaskRecord, command: Any, index: int) -> TaskNote | None:
    """What the task's notes keep of `command`: a gated task's gate answers and re-runs."""
    if isinstance(command, Rerun):
        where = f"away from node {command.node_id}" if command.away else f"on node {command.node_id}"
        by = f" (by {command.actor})" if command.actor else ""
        return TaskNote(index, command.now_ms, "rerun", f"attempt {task.attempt} {where}{by}")
    if not task.spec.gate:
        return None
    if isinstance(command, MarkReady):
        answer = command.gate_detail or "passed"
        return TaskNote(index, command.now_ms, "gate", f"{task.spec.gate} open: {answer}")
    if isinstance(command, (MarkWaiting, Skip)):
        verdict = "gave up: " if isinstance(command, Skip) else ""
        return TaskNote(index, command.now_ms, "gate", verdict + command.reason)
    return None


class StateMachine:
    """The replicated state and the only code that changes it."""

    def __init__(self) -> None:
        self.state = MachineState()
        self._changed: set[Topic] = set()
        # One handler per command type outside the task lifecycle (which has its own table).
        self._handlers: dict[type, Callable[[int, Any], ApplyResult]] = {
            RegisterNode: self._register, Heartbeat: self._heartbeat, Drain: self._drain,
            DeclareDead: self._declare_dead, RemoveNode: self._remove_node,
            SetRules: self._set_rules, ReportSummary: self._report_summary,
            SubmitPlan: self._submit_plan, RecordEffect: self._record_effect,
            AddToken: self._add_token, RevokeToken: self._revoke_token,
            RecordAudit: self._record_audit,
            OpenPlan: self._open_plan, AddPlanPart: self._add_plan_part,
            SetRuleEnabled: self._set_rule_enabled,
            ReportReplication: self._report_replication, Batch: self._apply_batch,
        }

    def take_changed(self) -> frozenset[Topic]:
        """The topics that applied commands (or a restore) changed since the last call."""
        changed, self._changed = frozenset(self._changed), set()
        return changed

    # ---- applying --------------------------------------------------------------------------

    def apply(self, index: int, command: Command, term: int = 0) -> ApplyResult:
        """Apply the committed entry at `index` (of `term`, when the caller knows it: the
        state keeps where each term began, so a step's index tells its term).
        Returns Applied(value) or Rejected(reason).

        Raises InvariantViolation only for a driver bug: indexes must strictly increase.
        """
        invariant(
            index > self.state.applied_index,
            f"apply index {index} is not after the applied index {self.state.applied_index}",
        )
        self.state.applied_index = index
        self.state.note_term(index, term)
        if isinstance(command, Session):
            return self._apply_session(index, command)
        return self._apply_one(index, command)

    def apply_entry(self, index: int, data: bytes, term: int = 0) -> ApplyResult:
        """Decode and apply an entry's bytes; undecodable bytes are Rejected, not raised."""
        try:
            command = decode_command(data)
        except InvalidCommand as error:
            invariant(index > self.state.applied_index, f"apply index {index} out of order")
            self.state.applied_index = index
            return Rejected(f"invalid command: {error}")
        return self.apply(index, command, term)

    def _apply_session(self, index: int, envelope: Session) -> ApplyResult:
        """Apply once per (client, sequence); a repeat gets the first result back."""
        sessions = self.state.sessions
        session = sessions.pop(envelope.client_id, None)
        if session is not None and envelope.sequence <= session.sequence:
            session.last_index = index
            sessions[envelope.client_id] = session  # re-inserted last: dict order is LRU
            if envelope.sequence == session.sequence:
                return session.result
            return Rejected(
                f"sequence {envelope.sequence} of client {envelope.client_id} is older than "
                f"the last applied ({session.sequence}); its result is gone"
            )
        result = self._apply_one(index, envelope.command)
        sessions[envelope.client_id] = SessionRecord(
            envelope.client_id, envelope.sequence, result, index
        )
        if len(sessions) > SESSIONS_MAX:
            del sessions[next(iter(sessions))]  # the least recently used
        return result

    def _apply_one(self, index: int, command: Any) -> ApplyResult:
        result = self._dispatch(index, command)
        if isinstance(result, Applied):
            self._changed |= TOPICS_OF.get(type(command), frozenset())
        return result

    def _apply_batch(self, index: int, batch: Batch) -> ApplyResult:
        """Each command in order, at this index, as if alone; the value holds every result."""
        return Applied([result_to_wire(self._apply_one(index, command))
                        for command in batch.commands])

    def _dispatch(self, index: int, command: Any) -> ApplyResult:
        """Every task command goes through the lifecycle; the others have one handler each."""
        if isinstance(command, TASK_COMMANDS):
            return self._apply_task(index, command)
        handler = self._handlers.get(type(command))
        if handler is None:
            return Rejected(f"not a command: {type(command).__name__}")
        return handler(index, command)

    def _set_rules(self, index: int, command: SetRules) -> ApplyResult:
        # Checked by the proposing node; the command re-derived its version when built.
        self.state.rules = RuleSetRecord(command.version, command.file_names,
                                         command.texts, index, command.now_ms)
        add_version(self.state.rule_history, RuleVersion(
            command.version, index, command.now_ms, command.actor, command.file_names,
            command.texts))
        return Applied(command.version)

    def _report_replication(self, index: int, command: ReportReplication) -> ApplyResult:
        problem = refusal(self.state.replication, command)
        if problem:
            return Rejected(problem)
        self.state.replication = ReplicationRecord(command, index)
        return Applied(None)

    def _set_rule_enabled(self, index: int, command: SetRuleEnabled) -> ApplyResult:
        """Switch a rule off (or on) by name; the proposer checked the name is in the set."""
        disabled = self.state.disabled_rules
        if command.enabled:
            if disabled.pop(command.name, None) is None:
                return Rejected(f"rule {command.name} is not disabled")
            return Applied(command.name)
        if command.name in disabled:
            return Rejected(f"rule {command.name} is already disabled")
        if len(disabled) >= DISABLED_RULES_MAX:
            return Rejected(f"at most {DISABLED_RULES_MAX} rules may be disabled")
        disabled[command.name] = DisabledRule(command.name, index, command.now_ms, command.actor)
        return Applied(command.name)

    # ---- summaries and plans ---------------------------------------------------------------

    def _report_summary(self, index: int, command: ReportSummary) -> ApplyResult:
        key = summary_key(command.node_id, command.source)
        current = self.state.summaries.get(key)
        if current is not None and command.sequence <= current.sequence:
            return Rejected(f"summary {key} sequence {command.sequence} is not newer than "
                            f"{current.sequence}")
        self.state.summaries[key] = SummaryRecord(
            command.node_id, command.source, command.sequence, command.lines, command.malformed,
            command.data, index, command.now_ms)
        return Applied(command.sequence)

    def _submit_plan(self, index: int, command: SubmitPlan) -> ApplyResult:
        """All of the plan's tasks or none; then drop the oldest plans beyond PLANS_KEPT."""
        if command.plan_id in self.state.plans:
            return Rejected(f"plan {command.plan_id} exists")
        return self._commit_plan(index, command, command.tasks)

    def _commit_plan(self, index: int, header: SubmitPlan | OpenPlan,
                     tasks: tuple[PlannedTask, ...] | list[PlannedTask]) -> ApplyResult:
        taken = [task.task_id for task in tasks if task.task_id in self.state.tasks]
        if taken:
            return Rejected(f"plan {header.plan_id}: task {taken[0]} exists")
        for planned in tasks:
            self._create(SubmitTask(task_id=planned.task_id, spec=planned.spec,
                                    now_ms=header.now_ms), index)
        plan = PlanRecord(header.plan_id, header.trigger, header.rules_version, header.requests,
                          tuple(task.task_id for task in tasks), header.now_ms, index,
                          header.watch, header.note)
        self.state.plans[header.plan_id] = plan
        self.state.index_plan(plan)
        while len(self.state.plans) > PLANS_KEPT:
            self._forget_plan(next(iter(self.state.plans)))
        self._compact_finished()
        return Applied(header.plan_id)

    def _open_plan(self, index: int, command: OpenPlan) -> ApplyResult:
        """Stage a big plan's header; its tasks come in AddPlanPart entries."""
        staged = self.state.staged_plans
        if command.plan_id in self.state.plans or command.plan_id in staged:
            return Rejected(f"plan {command.plan_id} exists")
        staged[command.plan_id] = StagedPlan(command, index)
        while len(staged) > STAGED_PLANS_MAX:
            del staged[next(iter(staged))]  # abandoned by a leader that died mid-plan
        return Applied(command.plan_id)

    def _add_plan_part(self, index: int, command: AddPlanPart) -> ApplyResult:
        """Stage one part; the last one commits the whole plan (or drops it, refused)."""
        staged = self.state.staged_plans.get(command.plan_id)
        problem = check_part(staged, command)
        if staged is None or problem:
            return Rejected(problem)
        staged.tasks.extend(command.tasks)
        staged.parts += 1
        if staged.parts < staged.header.parts:
            return Applied(command.part)
        del self.state.staged_plans[command.plan_id]
        problem = check_complete(staged)
        if problem:
            return Rejected(problem)
        return self._commit_plan(index, staged.header, staged.tasks)

    def _forget_plan(self, plan_id: str) -> None:
        """Drop a plan and its finished tasks (unfinished ones stay until they end)."""
        plan = self.state.plans.pop(plan_id)
        self.state.unindex_plan(plan_id)
        for task_id in plan.task_ids:
            task = self.state.tasks.get(task_id)
            if task is not None and task.state in TERMINAL_STATES:
                self.state.remove(task_id)
            elif task is not None:
                self.state.plan_of.pop(task_id, None)

    def _compact_finished(self) -> None:
        """Compact finished plans, oldest first, while their tasks hold more than
        FINISHED_KEYS_KEPT keys: each keeps its outcome and effect, its tasks go."""
        state = self.state
        if not state.finished_plans:
            return
        held = sum(state.plan_keys[plan_id] for plan_id in state.finished_plans)
        for plan_id in [plan_id for plan_id in state.plans if plan_id in state.finished_plans]:
            if held <= FINISHED_KEYS_KEPT:
                return
            held -= state.plan_keys[plan_id]
            self._compact(state.plans[plan_id])

    def _compact(self, plan: PlanRecord) -> None:
        counts: dict[str, int] = {}
        plan.finished_ms = self.state.plan_finished_ms(plan) or plan.created_ms
        for task_id in plan.task_ids:
            task = self.state.tasks.get(task_id)
            if task is not None:
                counts[task.state.value] = counts.get(task.state.value, 0) + 1
                self.state.remove(task_id)
        plan.outcome, plan.task_ids = tuple(sorted(counts.items())), ()
        self.state.unindex_plan(plan.plan_id)

    def _record_effect(self, index: int, command: RecordEffect) -> ApplyResult:
        plan = self.state.plans.get(command.plan_id)
        if plan is None:
            return Rejected(f"unknown plan {command.plan_id}")
        plan.effect = PlanEffect(command.cache, command.before_hits, command.before_misses,
                                 command.after_hits, command.after_misses, command.window_ms,
                                 command.now_ms)
        return Applied(None)

    # ---- access: tokens and the audit trail (access.py) ------------------------------------

    def _add_token(self, index: int, command: AddToken) -> ApplyResult:
        refusal = self.state.access.add_token(index, command)
        return Rejected(refusal) if refusal else Applied(command.name)

    def _revoke_token(self, index: int, command: RevokeToken) -> ApplyResult:
        refusal = self.state.access.revoke_token(command)
        return Rejected(refusal) if refusal else Applied(command.name)

    def _record_audit(self, index: int, command: RecordAudit) -> ApplyResult:
        self.state.access.record(index, command)
        return Applied(index)

    # ---- tasks -----------------------------------------------------------------------------

    def _apply_task(self, index: int, command: Any) -> ApplyResult:
        task = self.state.tasks.get(command.task_id)
        outcome = decide(task, command, self.state)
        if isinstance(outcome, Refusal):
            if outcome.stale_fence:
                self.state.stale_fence_rejections += 1
            return Rejected(outcome.reason)
        if task is None:
            return self._create(command, index)
        value = self._change(index, task, command)
        task.updated_ms = command.now_ms
        if outcome != task.state:
            self.state.move(task, outcome)
            if outcome in TERMINAL_STATES:
                self._compact_finished()
                self._prune_finished()
        return Applied(value)

    def _prune_finished(self) -> None:
        """Keep at most FINISHED_KEPT finished tasks submitted outside plans (plans compact
        their own): each time the finished count reaches a multiple of PRUNE_BATCH past the
        bound, drop the oldest (by the time they last changed, then id). Replicated values
        only, so every replica and every restored snapshot drops the same ones; without it
        a stream of submitted tasks would grow the state, snapshots and memory for ever."""
        state = self.state
        finished = sum(len(state.by_state[task_state]) for task_state in TERMINAL_STATES)
        if finished <= FINISHED_KEPT or finished % PRUNE_BATCH:
            return
        loose = [state.tasks[task_id] for task_state in TERMINAL_STATES
                 for task_id in state.by_state[task_state] if task_id not in state.plan_of]
        if len(loose) <= FINISHED_KEPT:
            return
        loose.sort(key=lambda task: (task.updated_ms, task.task_id))
        for task in loose[:len(loose) - FINISHED_KEPT]:
            state.remove(task.task_id)
        state.finished_pruned += len(loose) - FINISHED_KEPT

    def _create(self, command: SubmitTask, index: int) -> ApplyResult:
        task = TaskRecord(
            task_id=command.task_id,
            spec=command.spec,
            state=TaskState.PENDING,
            submitted_ms=command.now_ms,
            updated_ms=command.now_ms,
            submitted_index=index,
        )
        self.state.add(task)
        return Applied(command.task_id)

    def _change(self, index: int, task: TaskRecord, command: Any) -> Any:
        """Carry out an allowed command's effect (lifecycle.EFFECTS) and note it on the
        task's attempts; returns Applied's value."""
        effect = EFFECTS.get(type(command))
        value = effect(task, command, index) if effect is not None else None
        if isinstance(command, Assign):
            attempt = AttemptRecord(task.attempt, command.node_id, index, command.now_ms)
            task.attempts = (*task.attempts, attempt)[-ATTEMPTS_KEPT:]
        else:
            _record_attempt(task, command, index)
        note = _task_note(task, command, index)
        if note is not None:
            task.note(note)
        return value

    # ---- nodes -----------------------------------------------------------------------------

    def _node(self, node_id: int) -> NodeRecord | Rejected:
        node = self.state.nodes.get(node_id)
        return node if node is not None else Rejected(f"unknown node {node_id}")

    def _heartbeat(self, index: int, command: Heartbeat) -> ApplyResult:
        node = self._node(command.node_id)
        if isinstance(node, Rejected):
            return node
        node.last_heartbeat_ms = command.now_ms  # the node's own stamp: shown, never judged
        node.heartbeats += 1
        if command.fsync_p99_us >= 0:
            node.fsync_p99_us = command.fsync_p99_us
        node.alive = True
        return Applied(None)

    def _drain(self, index: int, command: Drain) -> ApplyResult:
        node = self._node(command.node_id)
        if isinstance(node, Rejected):
            return node
        node.draining = command.draining
        return Applied(None)

    def _remove_node(self, index: int, command: RemoveNode) -> ApplyResult:
        node = self._node(command.node_id)
        if isinstance(node, Rejected):
            return node
        del self.state.nodes[command.node_id]
        return Applied(None)

    def _register(self, index: int, command: RegisterNode) -> ApplyResult:
        node = self.state.nodes.get(command.node_id)
        if node is None:
            node = NodeRecord(
                node_id=command.node_id, capacity=command.capacity, lease_ms=command.lease_ms,
                labels=command.labels, registered_ms=command.now_ms,
                last_heartbeat_ms=command.now_ms, heartbeats=1,
            )
            self.state.nodes[command.node_id] = node
            return Applied(None)
        node.capacity, node.lease_ms, node.labels = command.capacity, command.lease_ms, command.labels
        node.last_heartbeat_ms = command.now_ms
        node.heartbeats += 1
        node.alive = True  # draining survives a re-registration: only Drain changes it
        return Applied(None)

    def _declare_dead(self, index: int, command: DeclareDead) -> ApplyResult:
        node = self._node(command.node_id)
        if isinstance(node, Rejected):
            return node
        if not node.alive:
            return Rejected(f"node {node.node_id} is already dead")
        if command.heartbeats >= 0:
            if command.heartbeats != node.heartbeats:
                return Rejected(f"node {node.node_id} was heard from since (heartbeat "
                                f"{node.heartbeats}, judged on {command.heartbeats})")
            node.alive = False
            return Applied(None)
        silent_ms = command.now_ms - node.last_heartbeat_ms
        if silent_ms <= node.lease_ms:
            return Rejected(
                f"node {node.node_id} was heard from {silent_ms} ms ago, within its "
                f"{node.lease_ms} ms lease"
            )
        node.alive = False
        return Applied(None)

    # ---- snapshots and agreement -----------------------------------------------------------

    def snapshot(self) -> bytes:
        """The whole state as versioned bytes (see snapshot.py)."""
        return snapshot_format.encode_snapshot(self.state)

    def restore(self, data: bytes) -> None:
        """Replace the state with a snapshot's. Raises: SnapshotError (state unchanged)."""
        for _ in self.restore_steps(data):
            pass

    def restore_steps(self, data: bytes | memoryview) -> Generator[None, None, None]:
        """`restore` in steps (see snapshot.decode_snapshot_steps); the state is replaced
        at the last step only, so readers in between see the old state whole."""
        self.state = yield from snapshot_format.decode_snapshot_steps(data)
        self._changed |= EVERYTHING

    def digest(self) -> str:
        """A stable hash of the state: equal on replicas that applied the same entries."""
        return hashlib.sha256(self.snapshot()).hexdigest()
