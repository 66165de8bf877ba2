"""SimNetwork and the key-value machine: seeded faults, partitions, sessions."""

from __future__ import annotations

import random

import pytest

from warmd.raft.types import Entry, EntryType, Message, MessageType
from warmd.testing.clock import VirtualClock
from warmd.testing.kvstore import KeyValueMachine, PutCommand
from warmd.testing.network import LinkFaults, SimNetwork


def heartbeat(source: int, target: int, term: int = 1) -> Message:
    return Message(MessageType.HEARTBEAT, source, target, term=term)


def deliver_all(network: SimNetwork, until_ticks: int = 100) -> list[Message]:
    return network.deliver_due(until_ticks)


def test_messages_arrive_after_their_delay_not_before() -> None:
    """A message sent at t with delay d is delivered at t + d, not earlier."""
    network = SimNetwork(random.Random(1), LinkFaults(delay_ticks_min=3, delay_ticks_max=3))
    network.send(heartbeat(1, 2), now_ticks=10)
    assert network.deliver_due(12) == []
    assert network.deliver_due(13) == [heartbeat(1, 2)]


def test_random_delays_reorder_messages() -> None:
    """With a delay range, some later-sent messages overtake earlier ones."""
    network = SimNetwork(random.Random(7), LinkFaults(delay_ticks_min=1, delay_ticks_max=8))
    for term in range(1, 51):
        network.send(heartbeat(1, 2, term), now_ticks=0)
    terms = [message.term for message in deliver_all(network)]
    assert sorted(terms) == list(range(1, 51))
    assert terms != sorted(terms)


def test_loss_and_duplication_follow_their_probabilities() -> None:
    """Loss and duplication happen at about the configured rates, reproducibly per seed."""
    def run(seed: int) -> tuple[int, int]:
        network = SimNetwork(random.Random(seed),
                             LinkFaults(loss_probability=0.3, duplicate_probability=0.2))
        for _ in range(2000):
            network.send(heartbeat(1, 2), now_ticks=0)
        delivered = len(deliver_all(network))
        return delivered, network.statistics().lost

    delivered, lost = run(3)
    assert 500 < lost < 700
    assert delivered > 2000 - lost  # duplicates came on top
    assert run(3) == (delivered, lost)


def test_symmetric_and_one_way_cuts() -> None:
    """A cut blocks both ways; a one-way cut blocks only its direction; heal restores."""
    network = SimNetwork(random.Random(1))
    network.cut(1, 2)
    network.cut_one_way(3, 1)
    for source, target in [(1, 2), (2, 1), (3, 1), (1, 3)]:
        network.send(heartbeat(source, target), now_ticks=0)
    assert [(m.from_id, m.to) for m in deliver_all(network)] == [(1, 3)]
    network.heal()
    network.send(heartbeat(2, 1), now_ticks=0)
    assert len(deliver_all(network)) == 1


def test_partition_swallows_messages_in_flight() -> None:
    """A partition that starts while a message travels drops it at delivery."""
    network = SimNetwork(random.Random(1), LinkFaults(delay_ticks_min=5, delay_ticks_max=5))
    network.send(heartbeat(1, 2), now_ticks=0)
    network.partition([[1], [2, 3]])
    assert network.deliver_due(10) == []
    assert network.statistics().blocked == 1


def test_partial_partition_keeps_other_links() -> None:
    """A node that loses one peer still reaches the others (the Cloudflare shape)."""
    network = SimNetwork(random.Random(1))
    network.cut(2, 1)
    assert not network.can_reach(2, 1) and not network.can_reach(1, 2)
    assert network.can_reach(2, 3) and network.can_reach(1, 3)


def test_filters_drop_matching_messages_until_removed() -> None:
    """A filter drops exactly the messages it matches, until it is removed."""
    network = SimNetwork(random.Random(1))
    rule = network.add_filter(lambda message: message.type is MessageType.SNAPSHOT)
    network.send(Message(MessageType.SNAPSHOT, 1, 2), now_ticks=0)
    network.send(heartbeat(1, 2), now_ticks=0)
    assert [m.type for m in deliver_all(network)] == [MessageType.HEARTBEAT]
    network.remove_filter(rule)
    network.send(Message(MessageType.SNAPSHOT, 1, 2), now_ticks=0)
    assert len(deliver_all(network)) == 1


def test_bad_fault_settings_are_refused() -> None:
    """Out-of-range probabilities and delays are clear ValueErrors."""
    with pytest.raises(ValueError, match="loss_probability"):
        LinkFaults(loss_probability=1.5)
    with pytest.raises(ValueError, match="delay_ticks_min"):
        LinkFaults(delay_ticks_min=0)


def test_virtual_clock_only_moves_forward() -> None:
    """The clock advances on demand and refuses to go back."""
    clock = VirtualClock()
    assert clock.advance(3) == 3
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)


def test_session_table_applies_a_retried_command_once() -> None:
    """The same (client, sequence) applied twice changes the state once."""
    machine = KeyValueMachine()
    first = PutCommand(7, 1, "k", "a")
    machine.apply(Entry(1, 1, data=first.encode()))
    machine.apply(Entry(1, 2, data=PutCommand(8, 1, "k", "b").encode()))
    again = machine.apply(Entry(2, 3, data=first.encode()))
    assert again is not None and again.duplicate
    assert machine.values == {"k": "b"}
    assert machine.duplicates_skipped == 1


def test_machine_snapshot_round_trips_and_checks_order() -> None:
    """A restored machine equals the original; entries must come in order."""
    machine = KeyValueMachine()
    machine.apply(Entry(1, 1, data=PutCommand(1, 1, "k", "v").encode()))
    machine.apply(Entry(1, 2, type=EntryType.CONF_CHANGE, data=b"\x90"))
    restored = KeyValueMachine.restore(machine.snapshot())
    assert (restored.values, restored.sessions, restored.applied_index) == ({"k": "v"}, {1: 1}, 2)
    with pytest.raises(ValueError, match="apply index"):
        restored.apply(Entry(1, 4))
    with pytest.raises(ValueError, match="put command"):
        restored.apply(Entry(1, 3, data=b"\xff\xfe"))


def test_a_slowed_link_delivers_late_until_healed() -> None:
    """A stalled link holds its messages back; other links and later sends are not slowed."""
    network = SimNetwork(random.Random(1))
    network.slow(1, 2, 10)
    network.send(heartbeat(1, 2), now_ticks=0)
    network.send(heartbeat(1, 3), now_ticks=0)
    assert [message.to for message in network.deliver_due(1)] == [3]
    assert network.deliver_due(10) == []
    assert [message.to for message in network.deliver_due(11)] == [2]
    network.heal()
    network.send(heartbeat(1, 2), now_ticks=20)
    assert [message.to for message in network.deliver_due(21)] == [2]
