"""Hand-written histories for the Wing & Gong linearizability checker."""

from __future__ import annotations

import random

import pytest

from warmd.testing.linearizability import (
    Operation,
    OperationKind,
    check_history,
    check_register,
)

PUT, GET = OperationKind.PUT, OperationKind.GET


def op(client: int, kind: OperationKind, value: str | None, call: int, ret: int | None,
       key: str = "k") -> Operation:
    return Operation(client, kind, key, value, call, ret)


def test_sequential_put_then_get_is_linearizable() -> None:
    """A read after a completed write that sees the write is fine."""
    history = [op(1, PUT, "a", 0, 1), op(2, GET, "a", 2, 3)]
    assert check_register(history)[0]


def test_stale_read_after_completed_write_is_not() -> None:
    """A read that starts after a write returned must not see the older value."""
    history = [op(1, PUT, "a", 0, 1), op(1, PUT, "b", 2, 3), op(2, GET, "a", 4, 5)]
    assert not check_register(history)[0]


def test_read_of_absent_key_before_any_write() -> None:
    """A read that finishes before a write starts sees the key absent."""
    history = [op(2, GET, None, 0, 1), op(1, PUT, "a", 2, 3)]
    assert check_register(history)[0]
    assert not check_register([op(1, PUT, "a", 0, 1), op(2, GET, None, 2, 3)])[0]


@pytest.mark.parametrize("seen", [None, "a"])
def test_concurrent_read_may_see_old_or_new(seen: str | None) -> None:
    """A read overlapping a write may see either side of it."""
    history = [op(1, PUT, "a", 0, 10), op(2, GET, seen, 2, 5)]
    assert check_register(history)[0]


def test_new_then_old_reads_are_not_linearizable() -> None:
    """Once one read saw the new value, a later read cannot see the old one."""
    history = [
        op(1, PUT, "a", 0, 1),
        op(1, PUT, "b", 2, 20),
        op(2, GET, "b", 3, 4),
        op(3, GET, "a", 5, 6),
    ]
    assert not check_register(history)[0]


def test_concurrent_writes_fix_one_order() -> None:
    """Two concurrent writes may land in either order, but readers must agree on one."""
    writes = [op(1, PUT, "a", 0, 10), op(2, PUT, "b", 0, 10)]
    assert check_register([*writes, op(3, GET, "a", 11, 12)])[0]
    assert check_register([*writes, op(3, GET, "b", 11, 12)])[0]
    assert not check_register([*writes, op(3, GET, "b", 11, 12), op(3, GET, "a", 13, 14)])[0]


def test_read_of_never_written_value_is_not() -> None:
    """A read cannot return a value nobody wrote."""
    assert not check_register([op(1, PUT, "a", 0, 1), op(2, GET, "z", 0, 5)])[0]


@pytest.mark.parametrize("seen", [None, "a"])
def test_unknown_outcome_write_may_or_may_not_take_effect(seen: str | None) -> None:
    """A timed-out write may be seen by a later read, or never."""
    history = [op(1, PUT, "a", 0, None), op(2, GET, seen, 5, 6)]
    assert check_register(history)[0]


def test_unknown_outcome_write_cannot_take_effect_before_its_call() -> None:
    """A write with an unknown outcome still cannot be seen before it was called."""
    history = [op(2, GET, "a", 0, 1), op(1, PUT, "a", 5, None)]
    assert not check_register(history)[0]


def test_unknown_write_seen_then_unseen_is_not() -> None:
    """Once a timed-out write was observed, a later read cannot go back to the old value."""
    history = [
        op(1, PUT, "old", 0, 1),
        op(1, PUT, "new", 2, None),
        op(2, GET, "new", 5, 6),
        op(3, GET, "old", 7, 8),
    ]
    assert not check_register(history)[0]


def test_history_checks_keys_independently_and_names_the_bad_key() -> None:
    """The per-key split reports the key whose history is not linearizable."""
    history = [
        op(1, PUT, "a", 0, 1, key="x"),
        op(2, GET, "a", 2, 3, key="x"),
        op(1, PUT, "a", 0, 1, key="y"),
        op(2, GET, None, 2, 3, key="y"),
    ]
    result = check_history(history)
    assert not result.linearizable
    assert result.failing_key == "y"
    assert "NOT linearizable" in result.describe()
    assert check_history(history[:2]).linearizable


def test_unanswered_reads_are_ignored() -> None:
    """A read without an answer constrains nothing, whatever value it carries."""
    history = [op(1, PUT, "a", 0, 1), op(2, GET, "zzz", 2, None)]
    assert check_history(history).linearizable


def test_return_before_call_is_rejected() -> None:
    """An operation that returns before it is called is a clear ValueError."""
    with pytest.raises(ValueError, match="before its call"):
        op(1, PUT, "a", 5, 4)


def _random_linearizable_history(rng: random.Random, operations: int) -> list[Operation]:
    """Run a register sequentially at distinct points, then widen each op around its point."""
    value: str | None = None
    history = []
    for point in range(0, operations * 10, 10):
        call = point - rng.randint(0, 25)
        ret = point + rng.randint(0, 25)
        if rng.random() < 0.5:
            value = f"v{point}"
            history.append(op(rng.randint(1, 4), PUT, value, call, ret))
        else:
            history.append(op(rng.randint(1, 4), GET, value, call, ret))
    return history


@pytest.mark.parametrize("seed", range(20))
def test_random_linearizable_histories_pass_and_corrupted_ones_fail(seed: int) -> None:
    """Histories built around a sequential run pass; a read of a fresh value then fails."""
    rng = random.Random(seed)
    history = _random_linearizable_history(rng, 40)
    result = check_history(history)
    assert result.linearizable, result.describe()
    reads = [number for number, item in enumerate(history) if item.kind is GET]
    if reads:
        victim = history[rng.choice(reads)]
        history[history.index(victim)] = op(
            victim.client_id, GET, "never-written", victim.call_ticks, victim.return_ticks
        )
        assert not check_history(history).linearizable
