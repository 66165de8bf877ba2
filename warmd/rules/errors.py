"""Rule-language diagnostics and the errors that carry them.

A `Diagnostic` is one located problem; `render()` turns it into the compiler-style
text operators read. Pure: no file access, the caller passes the source text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from warmd.errors import WarmdError


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem at a 1-based line and column of a rule file.

    `expected` says in words what would have been valid there; `suggestion` is a
    near name ("did you mean ...") when one exists. `width` is how many characters
    the caret underline spans (at least one).
    """

    line: int
    column: int
    message: str
    expected: str = ""
    suggestion: str = ""
    width: int = 1
    severity: str = "error"


class RuleError(WarmdError):
    """A rule file is invalid; `diagnostics` lists every problem found in one pass.

    The exit status 2 matches `warmctl rules check` (promtool's convention).
    """

    exit_status = 2

    def __init__(self, filename: str, source: str, diagnostics: Sequence[Diagnostic]) -> None:
        self.filename = filename
        self.source = source
        self.diagnostics = tuple(sorted(diagnostics))
        super().__init__(render_all(filename, source, self.diagnostics))


class RuleSyntaxError(RuleError):
    """The text does not follow the grammar (at least one syntax diagnostic)."""


class RuleCompileError(RuleError):
    """The text parses, but a static check failed (unknown name, bad value, ...)."""


def render(filename: str, source: str, diagnostic: Diagnostic) -> str:
    """Format one diagnostic: location line, source line, caret, expected, suggestion."""
    lines = source.splitlines()
    head = (
        f"{filename}:{diagnostic.line}:{diagnostic.column}: "
        f"{diagnostic.severity}: {diagnostic.message}"
    )
    out = [head]
    if 1 <= diagnostic.line <= len(lines):
        # Tabs become single spaces so that the caret lines up with the column count.
        text = lines[diagnostic.line - 1].replace("\t", " ")
        out.append(f"    {text}")
        width = max(1, diagnostic.width)
        out.append("    " + " " * (diagnostic.column - 1) + "^" + "~" * (width - 1))
    if diagnostic.expected:
        out.append(f"  expected: {diagnostic.expected}")
    if diagnostic.suggestion:
        out.append(f"  help: {diagnostic.suggestion}")
    return "\n".join(out)


def render_all(filename: str, source: str, diagnostics: Sequence[Diagnostic]) -> str:
    """Render every diagnostic, in file order, separated by blank lines."""
    return "\n\n".join(render(filename, source, d) for d in sorted(diagnostics))
