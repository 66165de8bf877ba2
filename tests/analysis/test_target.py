"""Template mining: typed segments, canonical queries, constraint expressions, slugs."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from warmd.analysis.target import PathGeneraliser, canonical, decompose, value_type


def test_segments_are_typed() -> None:
    """Numeric, uuid, hex and date segments become typed slots; words stay literal."""
    parts = decompose("/api/item/123/3f2504e0-4f89-11d3-9a0c-0305e82c3301/deadbeef42/2024-03-05/x")
    assert parts.template.pattern == "/api/item/{int}/{uuid}/{hex}/{date}/x"
    assert parts.values == ("123", "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "deadbeef42",
                            "2024-03-05")


def test_query_is_order_insensitive() -> None:
    """Two orders of the same parameters give one template and one canonical target."""
    first, second = decompose("/r?b=2&a=x"), decompose("/r?a=x&b=2")
    assert first == second
    assert first.template.pattern == "/r?a={}&b={}"
    assert canonical("/r?b=2&a=x") == "/r?a=x&b=2"


def test_compose_is_the_inverse_of_decompose() -> None:
    """Composing a template with its values gives back the canonical target."""
    target = "/shop/42?flag&page=3&q=shoes"
    parts = decompose(target)
    assert parts.template.compose(parts.values) == target
    assert parts.template.slot_names == ("path[2]", "page", "q")


def test_constraint_expressions_split_into_numeric_slots() -> None:
    """OPeNDAP `var[a:s:b]` ranges (even percent-encoded) become int slots by role."""
    parts = decompose("/d/x.dods?QA[3920:1:3920][0:1:9],lat")
    assert parts.template.pattern == "/d/x.dods?QA[{int}:{int}:{int}][{int}:{int}:{int}],lat"
    assert parts.template.slot_names[:3] == ("QA[0].start", "QA[0].stride", "QA[0].stop")
    assert parts.values == ("3920", "1", "3920", "0", "1", "9")
    encoded = decompose("/d/x.dods?QA%5b3920:1:3920%5d%5b0:1:9%5d,lat")
    assert encoded.values == parts.values


def test_value_types() -> None:
    """Values are typed as dates, ints, e-mails, tokens and words."""
    assert value_type("2024-02-29") == "date"
    assert value_type("20240229") == "date"
    assert value_type("20241399") == "int"
    assert value_type("a.b@example.com") == "email"
    assert value_type("tok00042x123456789") == "token"
    assert value_type("region") == "word"
    assert value_type("") == "empty"


def test_per_position_statistics_make_slug_slots() -> None:
    """A literal position with many values among sibling paths becomes a {slug} slot."""
    generaliser = PathGeneraliser(min_distinct=5)
    for name in ("alpha", "beta", "gamma", "delta"):
        generaliser.observe(f"/blog/{name}/comments")
    assert not generaliser.generalised
    assert generaliser.observe("/blog/epsilon/comments")
    parts = decompose("/blog/zeta/comments", frozenset(generaliser.generalised))
    assert parts.template.pattern == "/blog/{slug}/comments"
    assert decompose("/about/team").template.pattern == "/about/team"


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)),
               max_size=60).map(lambda text: "/" + text))
@settings(max_examples=300, deadline=None)
def test_any_target_decomposes_and_canonical_is_stable(target: str) -> None:
    """No target makes decomposition raise, and the canonical form is a fixed point."""
    once = canonical(target)
    assert canonical(once) == once
    parts = decompose(target)
    assert len(parts.values) == len(parts.template.slot_names) == len(parts.template.pieces) - 1


def test_dates_and_numbers_inside_segments_become_slots() -> None:
    """`report-2024-05-18.pdf` and `page-12.html` carry typed slots inside the segment."""
    report = decompose("/files/report-2024-05-18.pdf")
    assert report.template.pattern == "/files/report-{date}.pdf"
    assert report.template.slot_names == ("path[2].date",)
    assert report.template.compose(report.values) == "/files/report-2024-05-18.pdf"
    assert decompose("/data/20240518.csv").template.pattern == "/data/{date}.csv"
    assert decompose("/blog/page-12.html").template.pattern == "/blog/page-{int}.html"
    assert decompose("/static/MOD09CMG.006.ncml").template.pattern == "/static/MOD09CMG.006.ncml"


def test_one_off_paths_do_not_block_generalisation() -> None:
    """When the signature table is full of one-off paths, they make room for new siblings."""
    generaliser = PathGeneraliser(min_distinct=3, max_signatures=10)
    for number in range(20):
        generaliser.observe(f"/junk/{number}x/unique{number}")
    for name in ("a", "b", "c"):
        generaliser.observe(f"/tiles/{name}/x")
    assert generaliser.generalised


_WORDS = st.text(alphabet="abcxyz-_.", min_size=1, max_size=6).filter(
    lambda word: value_type(word) not in ("int", "uuid", "hex", "date"))


@given(st.lists(_WORDS, min_size=1, max_size=5), st.data(),
       st.sampled_from(["", "?crs,lat,lon", "?b=2&a=1", "?v%5b0:1:9%5d"]))
@settings(max_examples=60, deadline=None)
def test_a_slug_is_found_at_any_position_of_any_depth(words: list[str], data: st.DataObject,
                                                      query: str) -> None:
    """Siblings differing at one position of a path of any depth make that position a slug
    (the generaliser and the split cut the same signature from the path string), and the
    memoised query split gives the decomposition of the whole target."""
    position = data.draw(st.integers(1, len(words)))
    generaliser = PathGeneraliser(min_distinct=3)

    def sibling(name: str) -> str:
        segments = ["", *words]
        segments[position] = name
        return "/".join(segments)

    for name in ("qa", "qb", "qc"):
        generaliser.observe(sibling(name))
    parts = decompose(sibling("qd") + query, frozenset(generaliser.generalised))
    assert f"path[{position}]" in parts.template.slot_names
    assert parts.values[parts.template.slot_names.index(f"path[{position}]")] == "qd"
    alone = decompose(sibling("qd"), frozenset(generaliser.generalised))
    assert parts.template.slot_names[:len(alone.values)] == alone.template.slot_names
    assert parts.template.compose(parts.values) == canonical(sibling("qd") + query)
