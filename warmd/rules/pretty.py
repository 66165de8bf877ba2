"""`RuleFile` -> canonical rule text (pure); parse(pretty(tree)) == tree.

The canonical form indents blocks by four spaces, leaves one blank line between
blocks, and writes values the way docs/rules.md does. Comments are not kept.
"""

from __future__ import annotations

from warmd.rules import ast

INDENT = "    "
ESCAPED_AFTER_BACKSLASH = frozenset('"\\nt')


def pretty(tree: ast.RuleFile) -> str:
    """The canonical text of a whole file, ending in a newline."""
    chunks: list[str] = []
    previous: ast.Item | None = None
    for item in tree.items:
        if previous is not None and (isinstance(item, ast.Block) or isinstance(previous, ast.Block)
                                     or type(item) is not type(previous)):
            chunks.append("")
        chunks.append(item_text(item))
        previous = item
    return "\n".join(chunks) + "\n" if chunks else ""


def item_text(item: ast.Item) -> str:
    """One top-level declaration or block."""
    if isinstance(item, ast.BackendDecl):
        return _join("backend", item.name.text, item.kind.text, *_args(item.args))
    if isinstance(item, ast.PluginDecl):
        return f"plugin {item.name.text}"
    body = [INDENT + statement_text(statement) for statement in item.statements]
    return "\n".join([f"{item.kind} {item.name.text} {{", *body, "}"])


def statement_text(statement: ast.Statement) -> str:
    """One statement inside a block, without indentation."""
    match statement:
        case ast.Setting(keyword=keyword, value=value):
            return f"{keyword} {value_text(value)}"
        case ast.Reference(keyword=keyword, names=names):
            return f"{keyword} " + ", ".join(name.text for name in names)
        case ast.SourceFormat(format=name, pattern=pattern):
            return _join("format", name.text, _optional(pattern))
        case ast.GateCheck(hook=hook, args=args):
            return _join("check", hook.text, *_args(args))
        case ast.LimitSlo(percentile=percentile, value=value):
            return f"slo {percentile.text} {value_text(value)}"
        case ast.TriggerOn(event=event, target=target):
            return _join("on", event.text, target.text if target else "")
        case ast.Match(method=method, path=path):
            return _join("match", method.text if method else "", path.text)
        case ast.Where(subject=subject, operator=operator, value=value):
            shown = ("param " if subject.is_param else "") + subject.name.text
            return _join("where", shown, operator, _optional(value))
        case ast.Param(name=name, kind=kind, args=args):
            return _join("param", name.text, kind.text, *_args(args))
        case ast.Load(kind=kind, target=target, args=args):
            return _join("load", kind.text, _optional(target), *_args(args))
        case ast.Budget(mode="top", value=value):
            return f"budget top {value_text(value)}"
        case ast.Budget(value=value):
            return f"budget {value_text(value)} of capacity"
        case ast.Ttl(value=value, jitter=jitter):
            return _join("ttl", value_text(value), f"jitter {value_text(jitter)}" if jitter else "")
        case ast.Nodes(labels=labels):
            return _join("nodes", *_args(labels))
    raise TypeError(f"not a statement: {statement!r}")


def value_text(value: ast.Value) -> str:
    """A value as it would be written in a rule file."""
    if value.kind is ast.ValueKind.STRING:
        return quote(value.text)
    if value.kind is ast.ValueKind.LIST:
        return "[" + ", ".join(value_text(item) for item in value.items) + "]"
    return value.text


def quote(text: str) -> str:
    """A string literal that decodes back to `text` (see parser.decode_string).

    A backslash is doubled only where it would otherwise start an escape, so regexes
    like `\\.` print as written.
    """
    out = []
    for position, char in enumerate(text):
        following = text[position + 1:position + 2]
        if char == "\\":
            out.append("\\\\" if following in ESCAPED_AFTER_BACKSLASH or not following else "\\")
        elif char == '"':
            out.append('\\"')
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _args(args: tuple[ast.Arg, ...]) -> list[str]:
    return [f"{arg.name.text}={value_text(arg.value)}" for arg in args]


def _optional(value: ast.Value | None) -> str:
    return value_text(value) if value is not None else ""


def _join(*words: str) -> str:
    return " ".join(word for word in words if word)
