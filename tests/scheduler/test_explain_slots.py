"""How `explain` names the test that decided a slot's class, and how it prints statistics."""

from __future__ import annotations

from warmd.rules.tree import Diagnosis, Evidence, ParamClass
from warmd.scheduler.explain import slot_document


def _evidence(test: str, value: float, held: bool) -> Evidence:
    return Evidence(test, "distinct", value, 0.5, held)


def test_the_decisive_test_is_the_last_that_held_not_a_later_miss() -> None:
    """A miss after the test that classified is shown, but never as the deciding one."""
    diagnosis = Diagnosis("id", ParamClass.HOT_ID, (
        _evidence("date", 0.1, False), _evidence("hot", 0.9, True),
        _evidence("nonce", 0.2, False)))
    document = slot_document(diagnosis, None)
    assert document["decisive"].startswith("hot: ")
    assert len(document["evidence"]) == 3


def test_with_no_test_held_the_default_class_decides() -> None:
    """When every test missed, the decisive line says the class is the tree's default."""
    diagnosis = Diagnosis("q", ParamClass.ENUM, (_evidence("date", 0.1, False),))
    assert slot_document(diagnosis, None)["decisive"] == "no test held: enum by default"


def test_statistics_print_without_exponents() -> None:
    """Large counts print with separators, not as `8.06e+03`."""
    assert str(Evidence("hot", "count", 8060.0, 1000.0, True)) == "hot: count=8,060 meets 1,000"
    assert str(Evidence("r", "ratio", 0.25, 0.5, False)) == "r: ratio=0.25 misses 0.5"
