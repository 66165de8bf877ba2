"""`warmctl top`: the node's /metrics figures as a refreshing terminal view, for hosts without
Grafana. Reads the same text Prometheus scrapes (admin command `metrics`); rates are the
change between two refreshes."""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from warmd.admin.client import add_socket_argument, client_from_args
from warmd.metrics import bucket_quantile

Labels = tuple[tuple[str, str], ...]
CLEAR = "\x1b[H\x1b[2J"
PATTERN_ROWS = 12


@dataclass(frozen=True, slots=True)
class Frame:
    """One scrape: sample values by (name, sorted labels), and when it was taken."""

    samples: dict[tuple[str, Labels], float]
    taken_s: float

    @classmethod
    def parse(cls, text: str, taken_s: float) -> Frame:
        return cls({(sample.name, tuple(sorted(sample.labels.items()))): sample.value
                    for family in text_string_to_metric_families(text)
                    for sample in family.samples}, taken_s)

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def series(self, name: str) -> dict[Labels, float]:
        return {labels: v for (sample, labels), v in self.samples.items() if sample == name}


def rate(now: Frame, before: Frame | None, name: str, labels: Labels) -> float | None:
    """Per second between two frames; None on the first frame."""
    if before is None or now.taken_s <= before.taken_s:
        return None
    change = now.samples.get((name, labels), 0.0) - before.samples.get((name, labels), 0.0)
    return max(0.0, change) / (now.taken_s - before.taken_s)


def _per_s(value: float | None) -> str:
    return "    -" if value is None else f"{value:7.1f}/s"


def quantile_ms(frame: Frame, name: str, fraction: float) -> float | None:
    """The quantile of a histogram's cumulative buckets (since the daemon started), in ms."""
    buckets = [(float(dict(labels)["le"]), count)
               for labels, count in frame.series(f"{name}_bucket").items()]
    bound = bucket_quantile(buckets, fraction)
    return bound * 1000 if bound is not None else None


def render(now: Frame, before: Frame | None) -> str:
    """The whole screen as text (see the module docstring)."""
    return "\n".join([*_raft(now, before), "", *_tasks(now, before), "",
                      *_sources(now), "", *_patterns(now, before)])


def _raft(now: Frame, before: Frame | None) -> list[str]:
    role = "leader" if now.value("warmd_is_leader") else (
        "follower" if now.value("warmd_has_leader") else "NO LEADER")
    fsync = quantile_ms(now, "warmd_wal_fsync_duration_seconds", 0.99)
    lines = [f"warmd top   {role}   term {now.value('warmd_term'):.0f}   "
             f"voters {now.value('warmd_voters'):.0f}   "
             f"leader changes {now.value('warmd_leader_changes_seen_total'):.0f}",
             f"commit {now.value('warmd_commit_index'):.0f} "
             f"({_per_s(rate(now, before, 'warmd_proposals_committed_total', ())).strip()})   "
             f"applied {now.value('warmd_applied_index'):.0f}   "
             f"pending {now.value('warmd_proposals_pending'):.0f}   "
             f"fsync p99 {'-' if fsync is None else f'<= {fsync:g} ms'}"]
    failed = now.series("warmd_proposals_failed_total")
    if failed:
        lines.append("proposals failed: " + ", ".join(
            f"{dict(labels)['reason']} {count:.0f}" for labels, count in sorted(failed.items())))
    lag = now.series("warmd_peer_lag_entries")
    contact = now.series("warmd_peer_last_contact_seconds")
    for labels in sorted(set(lag) | set(contact)):
        lines.append(f"  peer {dict(labels)['peer']:>3}   lag {lag.get(labels, 0):6.0f} entries"
                     f"   last contact {contact.get(labels, float('nan')):6.2f} s")
    return lines


def _tasks(now: Frame, before: Frame | None) -> list[str]:
    states = now.series("warmd_tasks")
    counts = [f"{dict(labels)['state']} {count:.0f}"
              for labels, count in sorted(states.items()) if count]
    lines = ["tasks  " + ("  ".join(counts) or "none")]
    for labels, count in sorted(now.series("warmd_tasks_finished_total").items()):
        found = dict(labels)
        lines.append(f"  finished {found['target_kind']:<10} {found['outcome']:<10} {count:6.0f}"
                     f"  {_per_s(rate(now, before, 'warmd_tasks_finished_total', labels))}")
    for labels, count in sorted(now.series("warmd_warm_keys_total").items()):
        found = dict(labels)
        lines.append(f"  keys {found['target']:<14} {found['outcome']:<10} {count:8.0f}"
                     f"  {_per_s(rate(now, before, 'warmd_warm_keys_total', labels))}")
    for labels, keys in sorted(now.series("warmd_plan_keys").items()):
        lines.append(f"  newest plan {dict(labels)['trigger']}: {keys:.0f} requests")
    return lines


def _sources(now: Frame) -> list[str]:
    lines = []
    lag = now.series("warmd_log_lag_seconds")
    for labels, waited in sorted(lag.items()):
        source = dict(labels)["source"]
        lines.append(f"source {source:<12} lines {now.value('warmd_log_lines_total', source=source, result='ok'):9.0f}"
                     f"   malformed {now.value('warmd_log_lines_total', source=source, result='malformed'):6.0f}"
                     f"   waiting {waited:5.1f} s")
    return lines


def _patterns(now: Frame, before: Frame | None) -> list[str]:
    """The busiest templates (by rate, or by count on the first frame) with their hit ratio."""
    requests: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    name = "warmd_cache_requests_total"
    for labels in now.series(name):
        found = dict(labels)
        change = rate(now, before, name, labels)
        requests[(found["target"], found["pattern"])][found["result"]] = (
            now.samples[(name, labels)] if change is None else change)
    ranked = sorted(requests.items(), key=lambda item: -sum(item[1].values()))[:PATTERN_ROWS]
    unit = "requests" if before is None else "req/s"
    lines = [f"{'source':<12} {'pattern':<40} {unit:>10}  hit ratio"]
    for (target, pattern), results in ranked:
        known = results.get("hit", 0.0) + results.get("miss", 0.0)
        ratio = f"{results.get('hit', 0.0) / known:6.1%}" if known else "     -"
        lines.append(f"{target:<12} {pattern[:40]:<40} {sum(results.values()):10.1f}  {ratio}")
    return lines


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("top", help="the node's metrics, refreshing (like htop)")
    add_socket_argument(parser)
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    parser.add_argument("--once", action="store_true", help="print one screen and exit")
    parser.set_defaults(handler=_top)


def _top(args: argparse.Namespace) -> int:
    """Refresh until interrupted (command.run turns Ctrl-C into status 130)."""
    if args.interval <= 0:
        print("warmctl top: --interval must be positive", file=sys.stderr)
        return 2
    before: Frame | None = None
    with client_from_args(args) as client:
        while True:
            now = Frame.parse(client.call("metrics")["text"], time.monotonic())
            screen = render(now, before)
            if args.once:
                print(screen)
                return 0
            sys.stdout.write(CLEAR + screen + "\n")
            sys.stdout.flush()
            before = now
            time.sleep(args.interval)
