"""The parser: statement shapes, positions, and syntax errors with recovery."""

from __future__ import annotations

import pytest

from warmd.rules import ast
from warmd.rules.errors import RuleSyntaxError
from warmd.rules.parser import MAX_SYNTAX_ERRORS, decode_string, parse, parse_recovering


def _rule(body: str) -> ast.Block:
    block = parse(f"rule r {{\n{body}\n}}\n").items[0]
    assert isinstance(block, ast.Block)
    return block


def test_statement_shapes_become_typed_nodes() -> None:
    """Each statement form yields its own dataclass with the written values."""
    block = _rule('match GET /a/{id:int}\nwhere param q not in [x, "y"]\nttl 1h jitter 10%\n'
                  "budget 5% of capacity\nschedule a, b")
    match, where, ttl, budget, schedule = block.statements
    assert match == ast.Match(ast.Name("GET"), ast.Name("/a/{id:int}"))
    assert where.operator == "not in" and where.subject == ast.Subject(ast.Name("q"), True)
    assert [item.text for item in where.value.items] == ["x", "y"]
    assert ttl == ast.Ttl(ast.Value(ast.ValueKind.DURATION, "1h"), ast.Value(ast.ValueKind.PERCENT, "10%"))
    assert budget.mode == "share"
    assert [name.text for name in schedule.names] == ["a", "b"]


def test_positions_point_at_tokens() -> None:
    """Names and values carry 1-based line and column spans for carets."""
    block = _rule("    backend   redis-main")
    reference = block.statements[0]
    assert reference.names[0].span == ast.Span(2, 15, 10)


def test_keywords_can_be_names_where_a_name_is_expected() -> None:
    """A backend called `cron` is a name, not a keyword, after `backend`."""
    tree = parse("backend cron redis\nrule ttl {\n    backend cron\n}\n")
    assert tree.items[0].name.text == "cron" and tree.items[1].name.text == "ttl"


def test_string_escapes_decode() -> None:
    r"""\" \\ \n \t are escapes; other backslashes (regexes) are kept as written."""
    assert decode_string(r'"a\"b\\c\nd\te\.f"') == 'a"b\\c\nd\te\\.f'


def test_crlf_and_missing_final_newline_are_accepted() -> None:
    """Windows line ends and a file without a final newline parse like any other."""
    assert parse("rule r {\r\n    match /a\r\n}") == parse("rule r {\n    match /a\n}\n")


def test_empty_file_and_comment_only_file_are_valid() -> None:
    """A file with nothing but comments is an empty rule set."""
    assert parse("") == ast.RuleFile()
    assert parse("# nothing yet\n\n   # still nothing") == ast.RuleFile()


def test_all_syntax_errors_are_reported_in_one_pass() -> None:
    """Recovery skips the broken statement and keeps finding later errors."""
    result = parse_recovering("rule a {\n    ttl 1h jiter 5%\n    priorty 3\n}\nrule b {\n    match GET\n}\n")
    assert [(d.line, d.column) for d in result.diagnostics] == [(2, 12), (3, 5), (6, 14)]
    assert [d.suggestion for d in result.diagnostics[:2]] == [
        "did you mean 'jitter'?", "did you mean 'priority'?"]


def test_recovered_tree_keeps_the_good_statements() -> None:
    """Statements around a broken one survive, and the block is marked damaged."""
    result = parse_recovering("rule a {\n    match /a\n    ttl @\n    priority 3\n}\nrule b {\n    match /b\n}\n")
    first = result.tree.items[0]
    assert [type(s).__name__ for s in first.statements] == ["Match", "Setting"]
    assert result.damaged == frozenset({0})


def test_broken_header_skips_its_block_without_cascading() -> None:
    """A header missing its brace costs one error, not one per statement of the block."""
    result = parse_recovering("rule a\n    match /a\n    ttl 1h\n}\nrule b {\n    match /b\n}\n")
    assert len(result.diagnostics) == 1
    assert [item.name.text for item in result.tree.items] == ["b"]


def test_expected_is_said_in_words() -> None:
    """The expected part names things (a duration, the end of the line), not token types."""
    result = parse_recovering("rule a {\n    ttl\n}\n")
    (diagnostic,) = result.diagnostics
    assert diagnostic.message == "the statement ends too early"
    assert "a value (string, number, duration" in diagnostic.expected
    assert "DURATION" not in diagnostic.expected and "_NL" not in diagnostic.expected


def test_unclosed_block_names_its_header() -> None:
    """At the end of the file, the error points at the block that was never closed."""
    result = parse_recovering("rule a {\n    match /a\n}\nrule b {\n    match /b\n")
    (diagnostic,) = result.diagnostics
    assert (diagnostic.line, diagnostic.message) == (4, "'rule b' is never closed: the file ends inside it")


def test_error_flood_stops_with_a_note() -> None:
    """A file of garbage stops after MAX_SYNTAX_ERRORS errors with a note saying so."""
    result = parse_recovering("@\n" * 200)
    assert len(result.diagnostics) == MAX_SYNTAX_ERRORS + 1
    assert result.diagnostics[-1].severity == "note"


def test_parse_raises_rule_syntax_error_with_every_diagnostic() -> None:
    """parse() raises the documented error type carrying all diagnostics and rendered text."""
    with pytest.raises(RuleSyntaxError) as raised:
        parse("rule a {\n    ttl ;\n    key \"x\n}\n", "x.rules")
    assert len(raised.value.diagnostics) == 2
    assert str(raised.value).startswith("x.rules:2:9: error: unexpected ';'")


def test_unclosed_block_is_still_checked() -> None:
    """After an unclosed block is reported, its statements still reach the compiler."""
    from warmd.rules.compile import check

    messages = [d.message for d in check("rule a {\n    match /a\n    priority 500\n").diagnostics]
    assert messages == ["'rule a' is never closed: the file ends inside it", "priority 500 is out of range"]
