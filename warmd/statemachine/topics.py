"""What a committed command changes, by topic: the table the shell's change feed reads.

The leader's loops, the executor and the console wake when something they care about
changed instead of polling the state. Each command type names the one topic it changes
(a plan also creates tasks); heartbeats are a topic of their own because they arrive
several times a second and change nothing a loop decides on except time.
"""

from __future__ import annotations

from enum import StrEnum

from warmd.statemachine.access import AddToken, RecordAudit, RevokeToken
from warmd.statemachine.commands import (
    AddPlanPart,
    Assign,
    Batch,
    Cancel,
    DeclareDead,
    Drain,
    Expire,
    Fail,
    Finish,
    Heartbeat,
    MarkReady,
    MarkWaiting,
    OpenPlan,
    RecordEffect,
    RegisterNode,
    Release,
    RemoveNode,
    ReportProgress,
    Rerun,
    Retry,
    Skip,
    Start,
    SubmitPlan,
    SubmitTask,
)
from warmd.statemachine.replication import ReportReplication
from warmd.statemachine.ruleset import SetRuleEnabled, SetRules
from warmd.statemachine.summaries import ReportSummary


class Topic(StrEnum):
    """A part of the replicated state (or of the node's Raft view) that can change."""

    TASKS = "tasks"
    PROGRESS = "progress"  # a running task's checkpoint moved
    NODES = "nodes"  # registered, drained, declared dead, removed
    HEARTBEATS = "heartbeats"
    PLANS = "plans"
    RULES = "rules"
    SUMMARIES = "summaries"
    ACCESS = "access"  # tokens added or revoked, audit records
    MEMBERSHIP = "membership"  # Raft voters and learners (from the applier)
    LEADERSHIP = "leadership"  # this node's view of role, term and leader (from the driver)
    REPLICATION = "replication"  # the leader's published replication table (every few s)


EVERYTHING = frozenset(Topic)

TOPICS_OF: dict[type, frozenset[Topic]] = {
    **{command: frozenset({Topic.TASKS}) for command in (
        SubmitTask, MarkReady, MarkWaiting, Skip, Assign, Start, Finish, Fail, Release,
        Cancel, Retry, Expire, Rerun)},
    ReportProgress: frozenset({Topic.PROGRESS}),
    **{command: frozenset({Topic.NODES}) for command in (
        RegisterNode, Drain, DeclareDead, RemoveNode)},
    Heartbeat: frozenset({Topic.HEARTBEATS}),
    SubmitPlan: frozenset({Topic.PLANS, Topic.TASKS}),
    OpenPlan: frozenset({Topic.PLANS}),
    AddPlanPart: frozenset({Topic.PLANS, Topic.TASKS}),  # the last part creates the tasks
    RecordEffect: frozenset({Topic.PLANS}),
    SetRules: frozenset({Topic.RULES}),
    SetRuleEnabled: frozenset({Topic.RULES}),
    ReportReplication: frozenset({Topic.REPLICATION}),
    ReportSummary: frozenset({Topic.SUMMARIES}),
    Batch: frozenset(),  # its commands report their own topics as each applies
    **{command: frozenset({Topic.ACCESS}) for command in (AddToken, RevokeToken, RecordAudit)},
}
