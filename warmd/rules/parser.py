"""Text -> `RuleFile`, with every syntax error of the file found in one pass.

Lark (LALR, contextual lexer) does the parsing. On an error we record a diagnostic,
blank out the broken statement or block (keeping line and column numbers), and parse
again, so later errors are reported too; no lark exception escapes this module.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import (
    LarkError,
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)
from lark.tree import Meta

from warmd.rules import ast
from warmd.rules.errors import Diagnostic, RuleSyntaxError
from warmd.rules.suggest import did_you_mean

MAX_SYNTAX_ERRORS = 50
# Appended once when the file ends inside a block, so the rest can still be checked.
EOF_CLOSER = "}  # added by the parser to close an unclosed block\n"
BLOCK_KEYWORDS = ("source", "gate", "limits", "schedule", "rule")

# What each named terminal means, in the words docs/rules.md uses.
TERMINAL_WORDS = {
    "NAME": "a name",
    "STRING": 'a string in double quotes ("...")',
    "INT": "a whole number",
    "DURATION": "a duration like 30s, 5m or +1d",
    "PERCENT": "a percentage like 10%",
    "RATE": "a rate like 100/s",
    "RANGE": "a range like 200..299",
    "PATH": "a path starting with '/'",
    "_NL": "the end of the line",
    "OPERATOR": "a comparison (=, !=, <, <=, >, >=, ~, !~)",
    "PRESENCE": "'exists' or 'missing'",
    "$END": "the end of the file",
}
DURATION_WORDS = {
    word: unit for unit, words in {
        "ms": ("ms", "millisecond", "milliseconds"), "s": ("s", "sec", "secs", "second", "seconds"),
        "m": ("m", "min", "mins", "minute", "minutes"), "h": ("h", "hr", "hour", "hours"),
        "d": ("d", "day", "days"), "w": ("w", "week", "weeks"),
    }.items() for word in words
}
VALUE_TERMINALS = frozenset({"STRING", "INT", "DURATION", "PERCENT", "RATE", "RANGE", "NAME", "LSQB"})


@dataclass(frozen=True)
class ParseResult:
    """The tree (possibly partial), its syntax diagnostics, and which items were repaired.

    `damaged` holds indexes into `tree.items` of blocks that lost a statement to
    error recovery; the compiler skips "missing statement" checks for them.
    """

    tree: ast.RuleFile
    diagnostics: tuple[Diagnostic, ...]
    damaged: frozenset[int]


@functools.cache
def _lark() -> Lark:
    """The LALR parser, built once; the grammar ships as package data."""
    return Lark.open_from_package(
        "warmd.rules", "grammar.lark", parser="lalr", lexer="contextual",
        propagate_positions=True, maybe_placeholders=False,
    )


def parse(text: str, filename: str = "<rules>") -> ast.RuleFile:
    """Parse rule text into a `RuleFile`.

    Raises:
        RuleSyntaxError: carrying every syntax diagnostic found in the file.
    """
    result = parse_recovering(text)
    if result.diagnostics:
        raise RuleSyntaxError(filename, text, result.diagnostics)
    return result.tree


def parse_recovering(text: str) -> ParseResult:
    """Parse as much as possible, collecting a diagnostic per syntax error; never raises."""
    working = text.replace("\r\n", "\n")
    working = working if working.endswith("\n") else working + "\n"
    diagnostics: list[Diagnostic] = []
    blanked: set[int] = set()
    for _ in range(MAX_SYNTAX_ERRORS):
        try:
            tree = _build(_lark().parse(working))
            return ParseResult(tree, tuple(diagnostics), _damaged(tree, blanked))
        except UnexpectedInput as error:
            diagnostics.append(describe(error, working))
            repaired = _repair(working, error, blanked)
        except VisitError as error:  # a tree callback failed: report it, no traceback
            diagnostics.append(Diagnostic(1, 1, f"cannot build the rule tree: {error.orig_exc}"))
            repaired = None
        except RecursionError:
            diagnostics.append(Diagnostic(1, 1, "the file nests too deeply to parse",
                                          expected="lists nested at most a few hundred deep"))
            repaired = None
        except LarkError as error:
            diagnostics.append(Diagnostic(1, 1, f"cannot parse this file: {error}"))
            repaired = None
        if repaired is None or repaired == working:
            break
        working = repaired
    else:
        last = diagnostics[-1]
        diagnostics.append(Diagnostic(last.line, last.column, f"too many syntax errors: stopped "
                                      f"after {MAX_SYNTAX_ERRORS}", severity="note"))
    return ParseResult(ast.RuleFile(), tuple(diagnostics), frozenset())


def _build(tree: Tree[Token]) -> ast.RuleFile:
    return _ToAst().transform(tree)


def _damaged(tree: ast.RuleFile, blanked: set[int]) -> frozenset[int]:
    return frozenset(
        position for position, item in enumerate(tree.items)
        if isinstance(item, ast.Block)
        and any(item.span.line <= line <= item.end_line for line in blanked)
    )


def describe(error: UnexpectedInput, text: str) -> Diagnostic:
    """Turn a lark exception into a diagnostic whose words an operator understands."""
    if isinstance(error, UnexpectedCharacters):
        return _describe_characters(error)
    if isinstance(error, UnexpectedEOF) or (
        isinstance(error, UnexpectedToken) and error.token.type == "$END"
    ):
        lines = text.split("\n")
        header = _unclosed_header(lines)
        if header is None:
            line = max(1, len(lines) - 1)
            return Diagnostic(line, 1, "unexpected end of file", expected="'}' to close the block")
        words = lines[header].split()
        what = " ".join(words[:2]) if len(words) >= 2 else "block"
        return Diagnostic(
            header + 1, 1 + len(lines[header]) - len(lines[header].lstrip()),
            f"'{what}' is never closed: the file ends inside it",
            expected="'}' on a line of its own to close the block", width=len(what),
        )
    assert isinstance(error, UnexpectedToken)
    return _describe_token(error, text)


def _describe_characters(error: UnexpectedCharacters) -> Diagnostic:
    char = error.char
    expected = expected_words(error.allowed or ())
    if char == '"':
        return Diagnostic(error.line, error.column, "unterminated string",
                          expected='a closing " on the same line')
    if char == ";":
        return Diagnostic(error.line, error.column, "unexpected ';'", expected=expected,
                          suggestion="statements end at the end of the line: remove the ';'")
    if char == "\t" or char.isspace():
        shown = repr(char)
    else:
        shown = f"'{char}'"
    return Diagnostic(error.line, error.column, f"unexpected character {shown}", expected=expected)


def _unclosed_header(lines: list[str]) -> int | None:
    """The 0-based line of the innermost block header still open at the end of the file."""
    open_headers: list[int] = []
    for number, line in enumerate(lines):
        delta = _brace_delta(line)
        open_headers += [number] * max(delta, 0)
        del open_headers[len(open_headers) + min(delta, 0):]
    return open_headers[-1] if open_headers else None


def _unit_hint(token: Token, text: str) -> str:
    """For `ttl 5 minutes`: durations are written without a space, like 5m."""
    unit = DURATION_WORDS.get(str(token).lower())
    lines = text.split("\n")
    before = lines[token.line - 1][: token.column - 1] if token.line and token.column and token.line <= len(lines) else ""
    found = re.search(r"(\d+)\s+$", before)
    if unit is None or found is None:
        return ""
    return f"write a duration without a space: '{found.group(1)}{unit}'"


def _describe_token(error: UnexpectedToken, text: str) -> Diagnostic:
    token = error.token
    expected_names = set(error.accepts or error.expected)
    expected = expected_words(expected_names)
    if token.type == "_NL":
        return Diagnostic(token.line, token.column, "the statement ends too early",
                          expected=expected)
    shown = describe_token(token)
    suggestion = ""
    if token.type == "NAME":
        keywords = [_keyword(name) for name in expected_names]
        suggestion = _unit_hint(token, text) or did_you_mean(str(token), [k for k in keywords if k])
    if str(token) in BLOCK_KEYWORDS and "BLOCK_END" in expected_names:
        suggestion = "a block cannot start inside another block: is a '}' missing above?"
    return Diagnostic(token.line, token.column, f"unexpected {shown}", expected=expected,
                      suggestion=suggestion, width=max(1, len(str(token))))


def describe_token(token: Token) -> str:
    """A token as a phrase: "word 'jiter'", "'{'", "duration '5m'"."""
    if token.type == "NAME":
        return f"word '{token}'"
    if token.type in TERMINAL_WORDS:
        kind = TERMINAL_WORDS[token.type].split(" like ")[0].removeprefix("a ").removeprefix("an ")
        return f"{kind} '{token}'"
    return f"'{token}'"


def _keyword(terminal_name: str) -> str | None:
    """The literal text of a keyword or punctuation terminal, or None for regex terminals."""
    for terminal in _lark().terminals:
        if terminal.name == terminal_name and terminal.pattern.type == "str":
            return terminal.pattern.value
    return None


def expected_words(names: Iterable[str]) -> str:
    """Describe a set of acceptable terminals in words, values collapsed to "a value"."""
    names = set(names)
    phrases: list[str] = []
    if names >= VALUE_TERMINALS:
        names -= VALUE_TERMINALS
        phrases.append("a value (string, number, duration, percentage, rate, range, name or list)")
    keywords = sorted(k for k in (_keyword(name) for name in names) if k and k.isalpha())
    punctuation = sorted(k for k in (_keyword(name) for name in names) if k and not k.isalpha())
    words = sorted(TERMINAL_WORDS[name] for name in names if name in TERMINAL_WORDS)
    phrases += words + [f"'{p}'" for p in punctuation]
    if len(keywords) <= 3:
        phrases += [f"'{k}'" for k in keywords]
    else:
        phrases.append("a keyword: " + ", ".join(keywords))
    return " or ".join(phrases) if len(phrases) <= 2 else "; ".join(phrases)


def _repair(text: str, error: UnexpectedInput, blanked: set[int]) -> str | None:
    """The text with the broken statement or block blanked out, or None if hopeless."""
    lines = text.split("\n")
    if isinstance(error, UnexpectedEOF) or getattr(getattr(error, "token", None), "type", "") == "$END":
        return None if text.endswith(EOF_CLOSER) else text + EOF_CLOSER
    line = getattr(error, "line", 0)
    if not 1 <= line <= len(lines):
        return None
    last = _region_end(lines, line - 1)
    for number in range(line - 1, last + 1):
        lines[number] = " " * len(lines[number])
        blanked.add(number + 1)
    return "\n".join(lines)


def _region_end(lines: list[str], start: int) -> int:
    """The last 0-based line of the statement or block that starts at line `start`."""
    head = lines[start].strip()
    depth = _brace_delta(lines[start])
    opens_block = head.split(" ", 1)[0] in BLOCK_KEYWORDS
    if depth <= 0 and not (opens_block and "{" not in head and "}" not in head):
        return start
    for number in range(start + 1, len(lines)):
        stripped = lines[number].strip()
        if depth <= 0 and stripped.split(" ", 1)[0] in BLOCK_KEYWORDS:
            return number - 1  # a header without '{': stop before the next block
        depth += _brace_delta(lines[number])
        if depth <= 0 and (stripped == "}" or _brace_delta(lines[number]) < 0):
            return number
    return start


def _brace_delta(line: str) -> int:
    """Opening minus closing braces outside strings and comments (path captures excluded)."""
    delta, in_string, previous = 0, False, ""
    for word in line.split("#", 1)[0].split():
        if word.startswith("/"):
            continue  # `{id:int}` inside a path template is not a block brace
        for char in word:
            if char == '"' and previous != "\\":
                in_string = not in_string
            elif not in_string and char == "{":
                delta += 1
            elif not in_string and char == "}":
                delta -= 1
            previous = char
    return delta


def _span(token: Token) -> ast.Span:
    return ast.Span(token.line or 0, token.column or 0, max(1, len(str(token))))


def _name(token: Token) -> ast.Name:
    return ast.Name(str(token), _span(token))


def decode_string(literal: str) -> str:
    """The content of a "..." literal; \\" \\\\ \\n \\t are escapes, other backslashes stay."""
    body, out, position = literal[1:-1], [], 0
    while position < len(body):
        char = body[position]
        if char == "\\" and position + 1 < len(body):
            following = body[position + 1]
            out.append({'"': '"', "\\": "\\", "n": "\n", "t": "\t"}.get(following, "\\" + following))
            position += 2
        else:
            out.append(char)
            position += 1
    return "".join(out)


def _meta_span(meta: object) -> ast.Span:
    return ast.Span(getattr(meta, "line", 0), getattr(meta, "column", 0))


def _args(children: Iterable[object]) -> tuple[ast.Arg, ...]:
    return tuple(child for child in children if isinstance(child, ast.Arg))


def _value_or_none(children: Iterable[object]) -> ast.Value | None:
    return next((child for child in children if isinstance(child, ast.Value)), None)


def _scalar(kind: ast.ValueKind) -> Callable[..., ast.Value]:
    def build(self: _ToAst, token: Token) -> ast.Value:
        text = decode_string(str(token)) if kind is ast.ValueKind.STRING else str(token)
        return ast.Value(kind, text, (), _span(token))
    return v_args(inline=True)(build)


def _setting(keyword: str) -> Callable[..., ast.Setting]:
    def build(self: _ToAst, meta: Meta, value: ast.Value) -> ast.Setting:
        return ast.Setting(keyword, value, _meta_span(meta))
    return v_args(inline=True, meta=True)(build)


def _reference(keyword: str) -> Callable[..., ast.Reference]:
    def build(self: _ToAst, meta: Meta, *names: Token) -> ast.Reference:
        return ast.Reference(keyword, tuple(_name(name) for name in names), _meta_span(meta))
    return v_args(inline=True, meta=True)(build)


def _block(kind: str) -> Callable[..., ast.Block]:
    def build(self: _ToAst, meta: Meta, name: Token, *rest: ast.Statement | Token) -> ast.Block:
        statements = tuple(item for item in rest if not isinstance(item, Token))
        end_line = rest[-1].line if rest and isinstance(rest[-1], Token) else meta.line
        return ast.Block(kind, _name(name), statements, _meta_span(meta), end_line or 0)
    return v_args(inline=True, meta=True)(build)


def _where(operator: str | None) -> Callable[..., ast.Where]:
    def build(self: _ToAst, meta: Meta, subject: ast.Subject, *rest: object) -> ast.Where:
        tokens = [str(item) for item in rest if isinstance(item, Token)]
        chosen = operator or tokens[-1]
        return ast.Where(subject, chosen, _value_or_none(rest), _meta_span(meta))
    return v_args(inline=True, meta=True)(build)


class _ToAst(Transformer[Token, ast.RuleFile]):
    """Lark tree -> ast dataclasses; one method per grammar rule (lark aliases name them)."""

    string = _scalar(ast.ValueKind.STRING)
    integer = _scalar(ast.ValueKind.INTEGER)
    duration = _scalar(ast.ValueKind.DURATION)
    percent = _scalar(ast.ValueKind.PERCENT)
    rate = _scalar(ast.ValueKind.RATE)
    range = _scalar(ast.ValueKind.RANGE)
    word = _scalar(ast.ValueKind.WORD)
    source_path = _setting("path")
    source_timezone = _setting("timezone")
    gate_timeout = _setting("timeout")
    gate_poll = _setting("poll")
    limit_rate = _setting("rate")
    limit_concurrency = _setting("concurrency")
    trigger_cron = _setting("cron")
    trigger_every = _setting("every")
    key = _setting("key")
    priority = _setting("priority")
    deadline = _setting("deadline")
    use_backend = _reference("backend")
    use_schedule = _reference("schedule")
    use_gate = _reference("gate")
    use_limits = _reference("limits")
    use_source = _reference("source")
    source_block = _block("source")
    gate_block = _block("gate")
    limits_block = _block("limits")
    schedule_block = _block("schedule")
    rule_block = _block("rule")
    where_compare = _where(None)
    where_in = _where("in")
    where_not_in = _where("not in")
    where_presence = _where(None)

    @v_args(meta=True)
    def list(self, meta: Meta, children: Sequence[object]) -> ast.Value:
        items = tuple(child for child in children if isinstance(child, ast.Value))
        return ast.Value(ast.ValueKind.LIST, "", items, _meta_span(meta))

    @v_args(inline=True)
    def arg(self, name: Token, value: ast.Value) -> ast.Arg:
        return ast.Arg(_name(name), value)

    @v_args(inline=True)
    def subject(self, *tokens: Token) -> ast.Subject:
        return ast.Subject(_name(tokens[-1]), is_param=len(tokens) == 2)

    def start(self, children: Sequence[ast.Item]) -> ast.RuleFile:
        return ast.RuleFile(tuple(children))

    @v_args(inline=True, meta=True)
    def backend_decl(self, meta: Meta, name: Token, kind: Token, *args: ast.Arg) -> ast.BackendDecl:
        return ast.BackendDecl(_name(name), _name(kind), _args(args), _meta_span(meta))

    @v_args(inline=True, meta=True)
    def plugin_decl(self, meta: Meta, name: Token) -> ast.PluginDecl:
        return ast.PluginDecl(_name(name), _meta_span(meta))

    @v_args(inline=True, meta=True)
    def source_format(self, meta: Meta, name: Token, *rest: ast.Value) -> ast.SourceFormat:
        return ast.SourceFormat(_name(name), _value_or_none(rest), _meta_span(meta))

    @v_args(inline=True, meta=True)
    def gate_check(self, meta: Meta, hook: Token, *args: ast.Arg) -> ast.GateCheck:
        return ast.GateCheck(_name(hook), _args(args), _meta_span(meta))

    @v_args(inline=True, meta=True)
    def limit_slo(self, meta: Meta, percentile: Token, value: ast.Value) -> ast.LimitSlo:
        return ast.LimitSlo(_name(percentile), value, _meta_span(meta))

    @v_args(inline=True, meta=True)
    def trigger_on(self, meta: Meta, event: Token, target: Token | None = None) -> ast.TriggerOn:
        return ast.TriggerOn(_name(event), _name(target) if target else None, _meta_span(meta))

    @v_args(inline=True, meta=True)
    def match(self, meta: Meta, *tokens: Token) -> ast.Match:
        method = _name(tokens[0]) if len(tokens) == 2 else None
        return ast.Match(method, _name(tokens[-1]), _meta_span(meta))

    @v_args(inline=True, meta=True)
    def param(self, meta: Meta, name: Token, kind: Token, *args: ast.Arg) -> ast.Param:
        return ast.Param(_name(name), _name(kind), _args(args), _meta_span(meta))

    @v_args(inline=True, meta=True)
    def load(self, meta: Meta, kind: Token, *rest: object) -> ast.Load:
        return ast.Load(_name(kind), _value_or_none(rest), _args(rest), _meta_span(meta))

    @v_args(inline=True, meta=True)
    def budget_top(self, meta: Meta, value: ast.Value) -> ast.Budget:
        return ast.Budget("top", value, _meta_span(meta))

    @v_args(inline=True, meta=True)
    def budget_share(self, meta: Meta, value: ast.Value) -> ast.Budget:
        return ast.Budget("share", value, _meta_span(meta))

    @v_args(inline=True, meta=True)
    def ttl(self, meta: Meta, value: ast.Value, jitter: ast.Value | None = None) -> ast.Ttl:
        return ast.Ttl(value, jitter, _meta_span(meta))

    @v_args(inline=True, meta=True)
    def nodes(self, meta: Meta, *labels: ast.Arg) -> ast.Nodes:
        return ast.Nodes(tuple(labels), _meta_span(meta))
