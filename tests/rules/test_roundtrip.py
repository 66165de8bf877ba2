"""Round trip: parse -> pretty-print -> parse gives the same tree, and printing is stable."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warmd.rules import ast
from warmd.rules.parser import _lark, parse
from warmd.rules.pretty import pretty, quote

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted([*ROOT.glob("conf/rules/*.rules"), *ROOT.glob("tests/rules/testdata/valid_*.rules")])
KEYWORDS = {t.pattern.value for t in _lark().terminals
            if t.pattern.type == "str" and t.pattern.value.isalpha()} | {"exists", "missing"}

names = st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True).filter(lambda n: n not in KEYWORDS)
name_nodes = names.map(ast.Name)
scalar_values = st.one_of(
    st.text(max_size=12).map(lambda t: ast.Value(ast.ValueKind.STRING, t)),
    st.from_regex(r"[0-9]{1,5}", fullmatch=True).map(lambda t: ast.Value(ast.ValueKind.INTEGER, t)),
    st.from_regex(r"[+-]?([0-9]{1,3}(ms|s|m|h|d|w)){1,2}", fullmatch=True).map(
        lambda t: ast.Value(ast.ValueKind.DURATION, t)),
    st.from_regex(r"[0-9]{1,3}(\.[0-9])?%", fullmatch=True).map(lambda t: ast.Value(ast.ValueKind.PERCENT, t)),
    st.from_regex(r"[0-9]{1,4}/(s|m|h)", fullmatch=True).map(lambda t: ast.Value(ast.ValueKind.RATE, t)),
    st.from_regex(r"[0-9]{1,3}\.\.[0-9]{1,3}", fullmatch=True).map(lambda t: ast.Value(ast.ValueKind.RANGE, t)),
    names.map(lambda t: ast.Value(ast.ValueKind.WORD, t)),
)
values = st.one_of(scalar_values, st.lists(scalar_values, max_size=3).map(
    lambda items: ast.Value(ast.ValueKind.LIST, "", tuple(items))))
args = st.lists(st.builds(ast.Arg, name_nodes, values), max_size=3).map(tuple)
paths = st.from_regex(r"/[a-z0-9/{}:._-]{0,20}", fullmatch=True).map(ast.Name)


def settings_of(*keywords: str) -> st.SearchStrategy[ast.Setting]:
    return st.builds(ast.Setting, st.sampled_from(keywords), values)


triggers = st.one_of(settings_of("cron", "every"),
                     st.builds(ast.TriggerOn, name_nodes, st.none() | name_nodes))
limit_statements = st.one_of(settings_of("rate", "concurrency"),
                             st.builds(ast.LimitSlo, name_nodes, values))
rule_statements = st.one_of(
    st.builds(ast.Match, st.none() | name_nodes, paths),
    st.builds(ast.Where, st.builds(ast.Subject, name_nodes, st.booleans()),
              st.sampled_from(["=", "!=", "<", "<=", ">", ">=", "~", "!~", "in", "not in"]), values),
    st.builds(ast.Where, st.builds(ast.Subject, name_nodes, st.booleans()),
              st.sampled_from(["exists", "missing"]), st.none()),
    st.builds(ast.Param, name_nodes, name_nodes, args),
    st.builds(ast.Load, name_nodes, st.none() | values, args),
    st.builds(ast.Budget, st.sampled_from(["top", "share"]), values),
    st.builds(ast.Ttl, values, st.none() | values),
    st.builds(ast.Nodes, args.filter(bool)),
    st.builds(ast.Reference, st.sampled_from(["backend", "limits"]), name_nodes.map(lambda n: (n,))),
    st.builds(ast.Reference, st.sampled_from(["schedule", "gate", "source"]),
              st.lists(name_nodes, min_size=1, max_size=3).map(tuple)),
    settings_of("key", "priority", "deadline"), triggers, limit_statements,
)
BLOCK_STATEMENTS = {
    "rule": rule_statements,
    "source": st.one_of(settings_of("path", "timezone"),
                        st.builds(ast.SourceFormat, name_nodes, st.none() | values)),
    "gate": st.one_of(st.builds(ast.GateCheck, name_nodes, args), settings_of("timeout", "poll")),
    "limits": limit_statements,
    "schedule": triggers,
}
blocks = st.sampled_from(sorted(BLOCK_STATEMENTS)).flatmap(lambda kind: st.builds(
    ast.Block, st.just(kind), name_nodes,
    st.lists(BLOCK_STATEMENTS[kind], max_size=6).map(tuple)))
items = st.one_of(blocks, st.builds(ast.BackendDecl, name_nodes, name_nodes, args),
                  st.builds(ast.PluginDecl, name_nodes))
files = st.lists(items, max_size=5).map(lambda found: ast.RuleFile(tuple(found)))


@settings(max_examples=300, deadline=None)
@given(files)
def test_generated_trees_survive_pretty_and_parse(tree: ast.RuleFile) -> None:
    """Any tree the grammar can express prints to text that parses back to an equal tree."""
    text = pretty(tree)
    assert parse(text) == tree, text


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_round_trip(path: Path) -> None:
    """Every shipped example round-trips, and printing the reparsed tree changes nothing."""
    tree = parse(path.read_text(encoding="utf-8"))
    text = pretty(tree)
    assert parse(text) == tree
    assert pretty(parse(text)) == text


@given(st.text(max_size=30))
def test_quoted_strings_decode_to_themselves(text: str) -> None:
    """quote() escapes exactly what the parser unescapes, regex backslashes included."""
    tree = parse(f"rule r {{\n    key {quote(text)}\n}}\n")
    statement = tree.items[0].statements[0]
    assert isinstance(statement, ast.Setting) and statement.value.text == text


def test_positions_do_not_affect_equality() -> None:
    """The same rule written with different spacing parses to equal trees."""
    compact = parse("rule r {\nmatch GET /a\nttl 1h jitter 5%\n}\n")
    spaced = parse("\n\nrule   r   {\n\n        match   GET   /a\n    ttl 1h   jitter 5%\n}")
    assert compact == spaced
    assert compact.items[0].span != spaced.items[0].span
