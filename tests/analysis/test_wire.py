"""The summary wire form: exact round trips, merges of decoded parts, and hostile input."""

from __future__ import annotations

import random
import zlib
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warmd.analysis.formats import Record
from warmd.analysis.summary import Summary, summarise
from warmd.analysis.wire import (
    DECODED_BYTES_MAX,
    ENCODED_BYTES_MAX,
    HEADER,
    MAGIC,
    SummaryDecodeError,
    SummaryEncodeError,
    decode_summary,
    encode_summary,
)
from warmd.rules.engine import diagnose_all, explain, predict
from warmd.statemachine.summaries import SUMMARY_BYTES_MAX
from warmd.testing.loggen import LogSpec, generate_records

SPEC = LogSpec(seed=5, days=2.0, requests_per_day=4_000)
HORIZON_S = 6 * 3600.0


@pytest.fixture(scope="module")
def records() -> list[Record]:
    return generate_records(SPEC)


@pytest.fixture(scope="module")
def encoded(records: list[Record]) -> bytes:
    return encode_summary(summarise(records))


def _plain(data: bytes) -> Any:
    return msgpack.unpackb(zlib.decompress(data[len(HEADER):]), raw=False)


def _repack(plain: Any) -> bytes:
    return HEADER + zlib.compress(msgpack.packb(plain, use_bin_type=True))


def test_round_trip_is_exact_and_keeps_predictions(records: list[Record]) -> None:
    """Decoding then re-encoding gives the same bytes, and the decoded summary predicts,
    diagnoses and explains exactly as the original does (dates, series, pages, hot ids)."""
    original = summarise(records)
    data = encode_summary(original)
    decoded = decode_summary(data)
    assert encode_summary(decoded) == data
    at_s = original.last_s
    expected = predict(original, at_s, HORIZON_S, 2_000)
    assert predict(decoded, at_s, HORIZON_S, 2_000) == expected
    sources = {prediction.source.split(" ")[0] for prediction in expected}
    assert {"recurring", "sequence", "date-relative", "page"} <= sources
    assert diagnose_all(decoded) == diagnose_all(original)
    for request in ("GET /static/app.js?_=123", "/reports/daily?region=region03&date=2024-03-06",
                    "GET /api/items/7", "POST /search?page=2&q=hats", "/never/seen"):
        assert explain(decoded, request) == explain(original, request)
    assert (decoded.lines, decoded.excluded, decoded.malformed) == \
        (original.lines, original.excluded, original.malformed)
    assert decoded.generaliser.generalised == original.generaliser.generalised


def test_merge_of_decoded_parts_equals_merge_of_originals(records: list[Record]) -> None:
    """Parts shipped through the wire merge into the same summary as the parts themselves."""
    third = len(records) // 3
    chunks = [records[:third], records[third:2 * third], records[2 * third:]]
    originals = [summarise(chunk) for chunk in chunks]
    decoded = [decode_summary(encode_summary(part)) for part in originals]
    for parts in (originals, decoded):
        for part in parts[1:]:
            parts[0].merge(part)
    assert encode_summary(decoded[0]) == encode_summary(originals[0])
    at_s = originals[0].last_s
    assert predict(decoded[0], at_s, HORIZON_S, 1_000) == \
        predict(originals[0], at_s, HORIZON_S, 1_000)


def test_equal_summaries_give_equal_bytes(records: list[Record]) -> None:
    """Two summaries built by the same steps encode to the same bytes (sets are sorted)."""
    assert encode_summary(summarise(records)) == encode_summary(summarise(records))


def test_an_empty_summary_round_trips() -> None:
    """A summary that saw no line (no landmark, infinite bounds) survives the wire."""
    empty = Summary()
    decoded = decode_summary(encode_summary(empty))
    assert decoded.landmark_s is None and decoded.lines == 0
    assert decoded.first_s == empty.first_s and decoded.last_s == empty.last_s
    assert predict(decoded, 0.0, HORIZON_S, 10) == []


def test_malformed_counts_and_samples_survive(records: list[Record]) -> None:
    """Malformed-line counts and samples (shown in the status) are carried."""
    summary = summarise(records[:100])
    summary.malformed, summary.malformed_samples = 3, ["garbage 1", "garbage ü 2"]
    decoded = decode_summary(encode_summary(summary))
    assert (decoded.malformed, decoded.malformed_samples) == (3, ["garbage 1", "garbage ü 2"])


@pytest.mark.parametrize(("data", "message"), [
    (b"", "not an encoded summary"),
    (b"PK\x03\x04rest", "not an encoded summary"),
    (MAGIC, "truncated inside its header"),
    (MAGIC + b"\x02" + zlib.compress(b"\x80"), "unsupported summary version 2"),
    (HEADER + b"not zlib", "not valid zlib"),
    (HEADER + zlib.compress(b"\x80")[:-3], "truncated"),
    (HEADER + zlib.compress(b"\x80") + b"x", "trailing bytes"),
    (HEADER + zlib.compress(b"\xc1"), "not valid msgpack"),
    (HEADER + zlib.compress(msgpack.packb([1, 2])), "expected a map"),
    (HEADER + zlib.compress(msgpack.packb({"config": 1})), "missing fields"),
])
def test_bad_input_gets_a_clear_error(data: bytes, message: str) -> None:
    """Each kind of bad input raises SummaryDecodeError saying what is wrong."""
    with pytest.raises(SummaryDecodeError, match=message):
        decode_summary(data)


def test_non_bytes_input_is_refused() -> None:
    """A str or None in place of bytes is a decode error, not a TypeError."""
    for value in ("WSM", None, 7):
        with pytest.raises(SummaryDecodeError, match="expected bytes"):
            decode_summary(value)  # type: ignore[arg-type]


def test_zip_bomb_is_capped() -> None:
    """A tiny input that would inflate past the cap is refused without inflating it all."""
    bomb = HEADER + zlib.compress(b"\x00" * (DECODED_BYTES_MAX + 1), 9)
    assert len(bomb) < DECODED_BYTES_MAX // 500
    with pytest.raises(SummaryDecodeError, match="inflates past"):
        decode_summary(bomb)


def test_bad_values_inside_a_valid_container_are_named(encoded: bytes) -> None:
    """A wrong type or range deep inside names its place in the summary."""
    plain = _plain(encoded)
    plain["templates"][0][1]["hours"] = [0] * 23
    with pytest.raises(SummaryDecodeError, match=r"templates\[0\]\.hours: expected 24 items"):
        decode_summary(_repack(plain))
    plain = _plain(encoded)
    plain["requests"]["items"][0][1] = float("nan")
    with pytest.raises(SummaryDecodeError, match=r"requests\.items\[0\]\.weight"):
        decode_summary(_repack(plain))
    plain = _plain(encoded)
    plain["config"]["bot_pattern"] = "(unclosed"
    with pytest.raises(SummaryDecodeError, match="not a regular expression"):
        decode_summary(_repack(plain))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_decode_errors(data: bytes) -> None:
    """Arbitrary bytes, with or without a valid header, never raise another exception."""
    for candidate in (data, HEADER + data, HEADER + zlib.compress(data)):
        with pytest.raises(SummaryDecodeError):
            decode_summary(candidate)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_bytes_raise_only_decode_errors(encoded: bytes, data: st.DataObject) -> None:
    """Flipped bytes in the compressed or the inflated form decode or fail cleanly."""
    packed = zlib.decompress(encoded[len(HEADER):])
    inflated = data.draw(st.booleans())
    target = bytearray(packed if inflated else encoded)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(target) - 1))
        target[position] = data.draw(st.integers(0, 255))
    candidate = HEADER + zlib.compress(bytes(target)) if inflated else bytes(target)
    try:
        summary = decode_summary(candidate)
    except SummaryDecodeError:
        return
    _use(summary)


def _use(summary: Summary) -> None:
    """Everything the leader does with a decoded summary must work on one that decoded."""
    at_s = summary.last_s if summary.landmark_s is not None else 0.0
    predict(summary, at_s, HORIZON_S, 200)
    diagnose_all(summary)
    explain(summary, "GET /api/items/3")
    summary.merge(summarise(generate_records(LogSpec(seed=9, days=0.05, requests_per_day=4_000))))


EDGY_TEXT = st.sampled_from(["", "-", "--5", "\u00b2", "\u0663", "{date:+1:%Y}", "{date:x}",
                             "{date:+9:%Y-%m-%d}", "/", "?a=", "&", "path[1]", "x" * 300])
PLAIN_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats()
    | st.sampled_from([0, -1, 1, 2**53, 0.0, -0.0, 1e308, -1e308, 5e-324])
    | st.text(max_size=8) | EDGY_TEXT | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=8)


def _places(plain: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a node of the plain tree (a list index or a map key per step)."""
    found = [path]
    if isinstance(plain, dict):
        for key, value in plain.items():
            found.extend(_places(value, (*path, key)))
    elif isinstance(plain, list):
        for position, value in enumerate(plain):
            found.extend(_places(value, (*path, position)))
    return found


@pytest.fixture(scope="module")
def small_plain(records: list[Record]) -> Any:
    return _plain(encode_summary(summarise(records[:400])))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_structural_mutations_raise_only_decode_errors(small_plain: Any,
                                                      data: st.DataObject) -> None:
    """Any node of the plain tree replaced by any msgpack value is refused cleanly, or the
    summary it decodes to predicts, diagnoses, explains and merges without error."""
    plain = msgpack.unpackb(msgpack.packb(small_plain), raw=False)  # a private deep copy
    groups: dict[str, list[tuple[Any, ...]]] = {}
    for place in _places(plain):  # grouped by field, so rare fields are drawn as often
        names = [step for step in place if isinstance(step, str)]
        groups.setdefault(names[-1] if names else "", []).append(place)
    group = groups[data.draw(st.sampled_from(sorted(groups)))]
    path = group[data.draw(st.integers(0, len(group) - 1))]
    replacement = data.draw(PLAIN_VALUES)
    if not path:
        plain = replacement
    else:
        parent = plain
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = replacement
    try:
        summary = decode_summary(_repack(plain))
    except SummaryDecodeError:
        return
    _use(summary)


# ---- the byte budget -----------------------------------------------------------------------


def _random_targets_summary(seed: int, lines: int, value_chars: int) -> Summary:
    """A summary of `lines` requests with random (incompressible) query values; the first
    tenth of the targets repeats, so some keys are clearly heavier."""
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    unique = ["/find?q=" + "".join(rng.choices(alphabet, k=value_chars)) for _ in range(lines)]
    targets = unique[: lines // 10] * 3 + unique[lines // 10:]
    count = len(targets)
    summary = Summary()
    summary.add_columns(targets, [1.7e9 + n for n in range(count)], ["GET"] * count,
                        [200] * count, [f"10.0.0.{n % 200}" for n in range(count)],
                        ["curl/8"] * count)
    return summary


def test_the_budget_matches_what_a_report_may_carry() -> None:
    """The encoder's default budget is the state machine's limit on ReportSummary.data."""
    assert ENCODED_BYTES_MAX == SUMMARY_BYTES_MAX


def test_an_oversized_summary_is_shrunk_to_fit() -> None:
    """Over the budget, the lightest request keys go first, the error bound grows by what
    was dropped, the result decodes, and the summary itself is left untouched."""
    summary = _random_targets_summary(seed=1, lines=6_000, value_chars=60)
    full = encode_summary(summary)
    budget = len(full) // 2
    data = encode_summary(summary, max_bytes=budget)
    assert len(data) <= budget
    assert encode_summary(summary) == full
    decoded = decode_summary(data)
    kept = decoded.requests.items
    assert 0 < len(kept) < len(summary.requests.items)
    lightest_kept = min(entry.weight for entry in kept.values())
    dropped = [entry.weight for key, entry in summary.requests.items.items() if key not in kept]
    assert max(dropped) <= lightest_kept
    assert decoded.requests.error_bound() >= summary.requests.error_bound() + max(dropped)
    for key, entry in summary.requests.top(100):
        assert kept[key].weight == entry.weight  # the repeated keys all survive, unchanged


def test_a_tight_budget_drops_the_oldest_templates() -> None:
    """When templates dominate, the least recently seen ones go, counted as dropped."""
    summary = Summary()
    for number in range(40):
        targets = [f"/t?k{number}a={n % 50}&k{number}b={n * 7919 % 997}" for n in range(200)]
        summary.add_columns(targets, [1.7e9 + 1_000 * number + n for n in range(200)],
                            ["GET"] * 200, [200] * 200, ["10.0.0.1"] * 200, ["curl"] * 200)
    budget = len(encode_summary(summary)) // 4
    decoded = decode_summary(encode_summary(summary, max_bytes=budget))
    assert 0 < len(decoded.templates) < 40
    assert decoded.dropped_templates == 40 - len(decoded.templates)
    newest = sorted(summary.templates, key=lambda p: summary.templates[p].last_s)
    assert set(decoded.templates) == set(newest[-len(decoded.templates):])


def test_an_impossible_budget_is_a_clear_error(encoded: bytes) -> None:
    """A budget that even an emptied summary cannot meet raises SummaryEncodeError."""
    with pytest.raises(SummaryEncodeError, match="does not fit in 100 bytes"):
        encode_summary(decode_summary(encoded), max_bytes=100)


@settings(max_examples=25, deadline=None)
@given(st.integers(200, 60_000))
def test_any_budget_gives_a_fitting_decodable_form(encoded: bytes, budget: int) -> None:
    """Whatever the budget, the form fits it and decodes, or the encoder says it cannot."""
    summary = decode_summary(encoded)
    try:
        data = encode_summary(summary, max_bytes=budget)
    except SummaryEncodeError:
        return
    assert len(data) <= budget
    _use(decode_summary(data))


@pytest.mark.parametrize("field", ["last_s", "first_s"])
def test_a_span_beyond_predictable_dates_is_refused(encoded: bytes, field: str) -> None:
    """A span reaching year 9999 (whose next days are no dates) is refused, naming the field."""
    plain = _plain(encoded)
    plain[field] = 253_402_192_801.0
    with pytest.raises(SummaryDecodeError, match=field):
        decode_summary(_repack(plain))


def test_a_shipped_summary_fits_the_smallest_raft_entry_cap() -> None:
    """The daemon encodes summaries to SHIPPED_BYTES_MAX, so a full one, in its ReportSummary
    and session envelope, still fits raft.max_entry_bytes at its minimum (1 MiB)."""
    from warmd.analysis.wire import SHIPPED_BYTES_MAX
    from warmd.statemachine.commands import Session, encode_command
    from warmd.statemachine.summaries import ReportSummary
    report = ReportSummary(node_id=7, source="s" * 256, sequence=2**62, lines=2**62,
                           malformed=2**62, data=b"\xff" * SHIPPED_BYTES_MAX, now_ms=2**62)
    entry = encode_command(Session(client_id="c" * 256, sequence=2**62, command=report))
    assert len(entry) <= 1 << 20
