"""The self-backtest's decision per template as a table (analyze, predict, backtest)."""

from __future__ import annotations

from warmd.rules.ranking import CANDIDATES, TemplateShare


def render_shares(shares: list[TemplateShare]) -> str:
    """The self-backtest's decision per template: winner, budget share, hits per key."""
    if not shares:
        return ("self-backtest: not run (rules plan their templates, or the history holds "
                "no same window yesterday)")
    lines = ["self-backtest on the same window yesterday (and before), per template "
             "(misses saved by the share: replayed, or * expected; - not a candidate):",
             f"{'template':<58}{'winner':>12}{'keys':>7}{'share':>7}{'per key':>9}  "
             + "/".join(CANDIDATES)]
    total = sum(share.keys for share in shares) or 1
    for share in shares:
        mark = "" if share.measured else "*"
        by_name = "/".join(f"{share.curves[name]:.1f}" if name in share.curves else "-"
                           for name in CANDIDATES)
        name = share.template if len(share.template) <= 57 else \
            share.template[:27] + "..." + share.template[-27:]
        lines.append(f"{name:<58}{share.winner:>12}{share.keys:>7}"
                     f"{share.keys / total:>7.1%}{share.hits_per_key:>8.3f}{mark:1}  {by_name}")
    return "\n".join(lines)
