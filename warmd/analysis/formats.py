"""Access-log formats: parse a line into a Record, detect the format of a sample.

Pure: works on strings handed in by the shell (runtime/analysis_worker reads files).
Combined/common (with optional trailing fields), JSON lines and named-group regexes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from itertools import compress
from operator import itemgetter
from typing import Any, NamedTuple, cast

from warmd.errors import ConfigError


class Record(NamedTuple):
    """One parsed request. A NamedTuple (immutable, typed) because millions are made per run."""

    time_s: float
    method: str
    target: str
    status: int
    client: str
    agent: str


# Combined and common share one pattern: referer/agent and anything after them are optional,
# so nginx/apache variants with trailing request-time fields (and netnea's extended format,
# whose "ident" column holds a country code) parse too.
COMBINED_PATTERN = (
    r'(?P<client>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] '
    r'"(?P<method>[A-Z]+) (?P<target>[^\s"]+)[^"]*" (?P<status>\d{3}) (?P<bytes>\S+)'
    r'(?: "(?P<referer>(?:[^"\\]|\\.)*)" "(?P<agent>(?:[^"\\]|\\.)*)")?'
)

JSON_FIELDS: Mapping[str, tuple[str, ...]] = {
    "time": ("time", "timestamp", "@timestamp", "ts", "time_local", "time_iso8601"),
    "method": ("method", "request_method", "verb"),
    "target": ("target", "request_uri", "uri", "url", "path", "request"),
    "status": ("status", "status_code", "response", "code"),
    "client": ("client", "remote_addr", "ip", "client_ip", "remote_ip", "user"),
    "agent": ("agent", "user_agent", "http_user_agent", "useragent"),
}

_MONTHS = {m: i + 1 for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"))}
_STRPTIME_FALLBACKS = ("%Y-%m-%d %I:%M%p", "%Y-%m-%d %I:%M:%S%p", "%d/%m/%Y %H:%M:%S",
                       "%Y/%m/%d %H:%M:%S", "%Y%m%dT%H%M%S")


@dataclass(frozen=True)
class LogFormat:
    """How to read one log: a named-group regex or JSON field names.

    `kind` is "regex" or "json". A regex needs the groups `time` and `target` (or `request`,
    "METHOD target PROTO"); `method`, `status`, `client` and `agent` default to GET, 200, "", "".
    """

    name: str
    kind: str
    pattern: str = ""
    json_fields: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: JSON_FIELDS)

    def compiled(self) -> re.Pattern[str]:
        """The compiled regex (cached on the instance)."""
        cached = self.__dict__.get("_compiled")
        if cached is None:
            cached = re.compile(self.pattern)
            object.__setattr__(self, "_compiled", cached)
        return cached


COMBINED = LogFormat("combined", "regex", COMBINED_PATTERN)
JSON_LINES = LogFormat("json", "json")
BUILTIN_FORMATS: Mapping[str, LogFormat] = {"combined": COMBINED, "common": COMBINED,
                                            "nginx": COMBINED, "json": JSON_LINES}


def format_from_spec(spec: str) -> LogFormat:
    """`combined`, `common`, `nginx`, `json`, `json:time=ts,target=uri,...` or `regex:PATTERN`.

    Raises:
        ConfigError: unknown name, invalid regex, or a regex without `time` and `target`.
    """
    if spec in BUILTIN_FORMATS:
        return BUILTIN_FORMATS[spec]
    if spec.startswith("json:"):
        fields = dict(JSON_FIELDS)
        for pair in filter(None, spec[5:].split(",")):
            name, _, key = pair.partition("=")
            if name not in JSON_FIELDS or not key:
                raise ConfigError(f"json format: bad field mapping {pair!r} "
                                  f"(fields: {', '.join(JSON_FIELDS)})")
            fields[name] = (key,)
        return LogFormat("json", "json", json_fields=fields)
    if spec.startswith("regex:"):
        return _regex_format(spec[6:])
    raise ConfigError(f"unknown log format {spec!r}: use combined, common, nginx, json, "
                      "json:FIELD=KEY,... or regex:PATTERN")


def _regex_format(pattern: str) -> LogFormat:
    try:
        groups = re.compile(pattern).groupindex
    except re.error as error:
        raise ConfigError(f"log format regex does not compile: {error}") from error
    if "time" not in groups or not ({"target", "request"} & set(groups)):
        raise ConfigError("log format regex needs named groups (?P<time>...) and "
                          "(?P<target>...) or (?P<request>...)")
    return LogFormat("regex", "regex", pattern)


class TimeParser:
    """Text timestamps to epoch seconds (UTC when no offset is given), memoised by prefix."""

    def __init__(self) -> None:
        self._cache: dict[str, float] = {}

    def parse(self, text: str) -> float:
        """Epoch seconds of `text`. Raises ValueError when no known format matches."""
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        if len(text) >= 26 and text[2] == "/" and text[6] == "/":
            value = self._clf(text)
        else:
            value = _parse_other(text)
            if len(self._cache) > 200_000:
                self._cache.clear()
            self._cache[text] = value
        return value

    def _clf(self, text: str) -> float:
        # "17/May/2015:10:05:03 +0000": cache the hour, add minutes and seconds by hand.
        return self.clf_hour_base(text[:14] + text[20:]) + int(text[15:17]) * 60 + int(text[18:20])

    def clf_hour_base(self, hour_key: str) -> float:
        """Epoch seconds of the hour of a CLF stamp, keyed by the stamp without its minutes
        and seconds ("17/May/2015:10 +0000"); memoised.

        Raises:
            ValueError: the month, digits or offset do not parse.
        """
        base = self._cache.get(hour_key)
        if base is None:
            month = _MONTHS.get(hour_key[3:6])
            if month is None:
                raise ValueError(f"bad month in {hour_key!r}")
            offset = hour_key[15:].strip() or "+0000"
            sign = -1 if offset[0] == "-" else 1
            zone = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
            base = datetime(int(hour_key[7:11]), month, int(hour_key[:2]), int(hour_key[12:14]),
                            tzinfo=zone).timestamp()
            if len(self._cache) > 200_000:
                self._cache.clear()
            self._cache[hour_key] = base
        return base


def _parse_other(text: str) -> float:
    stripped = text.strip()
    if stripped.replace(".", "", 1).isdigit():
        number = float(stripped)
        return number / 1000.0 if number > 1e11 else number
    try:
        moment = datetime.fromisoformat(stripped.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    for layout in _STRPTIME_FALLBACKS:
        if moment is not None:
            break
        try:
            moment = datetime.strptime(stripped, layout)
        except ValueError:
            continue
    if moment is None:
        raise ValueError(f"unrecognised timestamp {text!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class LineParser:
    """Parses lines of one format; counts and samples malformed lines instead of raising."""

    SAMPLE_LIMIT = 5

    def __init__(self, log_format: LogFormat) -> None:
        self.log_format = log_format
        self.times = TimeParser()
        self.malformed = 0
        self.malformed_samples: list[str] = []
        self._regex = log_format.compiled() if log_format.kind == "regex" else None

    def parse(self, line: str) -> Record | None:
        """The Record of `line`, or None (counted, maybe sampled) when it is malformed."""
        try:
            record = self._parse(line)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            record = None
        if record is None and line.strip():
            self.malformed += 1
            if len(self.malformed_samples) < self.SAMPLE_LIMIT:
                self.malformed_samples.append(line.rstrip("\n")[:300])
        return record

    def parse_many(self, lines: Iterable[str]) -> list[Record]:
        """Every well-formed record of `lines`, in order."""
        parse = self.parse
        return [record for record in map(parse, lines) if record is not None]

    def _parse(self, line: str) -> Record | None:
        if self._regex is None:
            return self._parse_json(line)
        match = self._regex.match(line)
        if match is None:
            return None
        groups = match.groupdict()
        target = groups.get("target")
        method = groups.get("method") or "GET"
        if target is None:
            method, target = _split_request(groups["request"])
        if not target or target[0] not in "/h*":
            return None
        return Record(self.times.parse(groups["time"]), method, target,
                      int(groups.get("status") or 200), groups.get("client") or "",
                      groups.get("agent") or "")

    def _parse_json(self, line: str) -> Record | None:
        document = json.loads(line)
        if not isinstance(document, dict):
            return None
        values = {name: _first(document, keys) for name, keys in
                  self.log_format.json_fields.items()}
        target, method = values["target"], values["method"] or "GET"
        if isinstance(target, str) and " " in target:
            method, target = _split_request(target)
        if not isinstance(target, str) or not target.startswith("/"):
            return None
        stamp, status = values["time"], values["status"] or 200
        if not isinstance(status, str | int | float):
            return None  # a list or a map: malformed, as int() would say
        time_s = float(stamp) if isinstance(stamp, int | float) else self.times.parse(str(stamp))
        return Record(time_s, str(method), target, int(status),
                      str(values["client"] or ""), str(values["agent"] or ""))


def _first(document: Mapping[str, object], keys: tuple[str, ...]) -> object:
    for key in keys:
        if key in document:
            return document[key]
    return None


def _split_request(request: str) -> tuple[str, str]:
    parts = request.split()
    if len(parts) < 2:
        raise ValueError(f"bad request line {request!r}")
    return parts[0], parts[1]


def detect_format(sample: Iterable[str]) -> LogFormat:
    """The built-in format that parses most of `sample` (combined, or JSON lines).

    Raises:
        ConfigError: neither parses at least half of the non-empty sample lines.
    """
    lines = [line for line in sample if line.strip()][:200]
    if not lines:
        raise ConfigError("cannot detect the log format of an empty log; pass --format")
    best, best_share = COMBINED, -1.0
    for candidate in (COMBINED, JSON_LINES):
        parser = LineParser(candidate)
        share = len(parser.parse_many(lines)) / len(lines)
        if share > best_share:
            best, best_share = candidate, share
    if best_share < 0.5:
        raise ConfigError(
            f"could not detect the log format ({best_share:.0%} of the sample parses as "
            f"{best.name}); pass --format combined|json|regex:PATTERN. First line: "
            f"{lines[0][:120]!r}")
    return best


# Per-line patterns for the combined fast path: the strict one (referer and agent present)
# is the quickest; the general one also takes common-format lines. Possessive quantifiers
# (no backtracking state) match the same lines as greedy ones here, because no field can give
# characters back to the next, and run about a tenth faster.
_COMBINED_STRICT = re.compile(
    r'(\S++) \S++ \S++ \[([^\]]++)\] "([A-Z]++) ([^\s"]++)[^"]*+" (\d{3}) \S++ "[^"]*+" '
    r'"([^"]*+)"')
_COMBINED_GENERAL = re.compile(
    r'(\S++) \S++ \S++ \[([^\]]++)\] "([A-Z]++) ([^\s"]++)[^"]*+" (\d{3}) \S++'
    r'(?: "[^"]*+" "([^"]*+)")?')
_GROUPS = re.Match.groups
# The same two patterns for a whole block at once (`findall`), anchored at line starts. The
# quick forms are the per-line patterns as they are: where every line of a block matches, each
# match is its line's (a match running across a newline would leave the next line without
# one). Otherwise the safe forms, whose fields cannot cross a newline, give each line's match
# (slower: a class that also excludes the newline is a set test, not a one-character test).
_BLOCK_QUICK = (re.compile("(?m)^" + _COMBINED_STRICT.pattern),
                re.compile("(?m)^" + _COMBINED_GENERAL.pattern))
_BLOCK_SAFE = tuple(re.compile("(?m)^" + pattern.pattern.replace(r"[^\]]", r"[^\]\n]")
                               .replace('[^"]', r'[^"\n]'))
                    for pattern in (_COMBINED_STRICT, _COMBINED_GENERAL))


@dataclass(frozen=True)
class Columns:
    """Parsed requests as parallel lists (what Summary.add_columns takes)."""

    targets: list[str]
    times_s: list[float]
    methods: list[str]
    statuses: list[int]
    clients: list[str]
    agents: list[str]

    def before(self, until_s: float | None) -> Columns:
        """The requests made before `until_s` (all of them when None), in their order:
        what `warmd predict --at` learns from."""
        if until_s is None or not self.times_s or max(self.times_s) < until_s:
            return self
        keep = [time_s < until_s for time_s in self.times_s]
        return Columns(list(compress(self.targets, keep)), list(compress(self.times_s, keep)),
                       list(compress(self.methods, keep)), list(compress(self.statuses, keep)),
                       list(compress(self.clients, keep)), list(compress(self.agents, keep)))


def parse_columns(parser: LineParser, lines: list[str]) -> Columns:
    """Parse `lines` into columns; malformed lines are counted and sampled on `parser`.

    Combined logs take a fast path (C-level matching over the chunk, timestamps converted
    with per-hour arithmetic); named regexes with a `target` group take a columnar path
    (each distinct time, status and target checked once); JSON lines go line by line.
    """
    log_format = parser.log_format
    if log_format.kind == "regex" and log_format.pattern != COMBINED_PATTERN and \
            "target" in log_format.compiled().groupindex and \
            "request" not in log_format.compiled().groupindex:
        return _regex_columns(parser, lines)
    if log_format.pattern != COMBINED_PATTERN:
        records = parser.parse_many(lines)
        return Columns([r.target for r in records], [r.time_s for r in records],
                       [r.method for r in records], [r.status for r in records],
                       [r.client for r in records], [r.agent for r in records])
    return _combined_columns(parser, _combined_rows(lines), len(lines), lambda: lines)


def parse_text(parser: LineParser, text: str) -> Columns:
    """Parse a block of whole lines (as read from a file) into columns, like parse_columns.

    Combined logs are matched by one `findall` over the block with line-anchored patterns
    (no Python code and no match object per line); malformed lines are the lines left
    without a match.
    """
    if parser.log_format.pattern != COMBINED_PATTERN:
        return parse_columns(parser, _split_lines(text))
    line_count = text.count("\n") + (bool(text) and not text.endswith("\n"))
    return _combined_columns(parser, _block_rows(text, line_count), line_count,
                             lambda: _split_lines(text))


def _block_rows(text: str, line_count: int) -> list[tuple[str, ...]]:
    """The rows `_combined_rows` gives for the lines of `text`, by `findall` over the block:
    the strict or else the general pattern when either matches every line, else the safe
    forms (strict, or general where it matches more lines)."""
    for pattern in _BLOCK_QUICK:
        rows: list[tuple[str, ...]] = pattern.findall(text)
        if len(rows) == line_count:
            return rows
    strict, general = _BLOCK_SAFE
    rows = strict.findall(text)
    if len(rows) < line_count:
        more = general.findall(text)
        if len(more) > len(rows):
            return more
    return rows


def _combined_rows(lines: list[str]) -> list[tuple[str, ...]]:
    """The groups of the lines that match the strict pattern, or, when some line does not
    (a common-format log, or common-format lines mixed into a combined one), of the lines
    that match the general pattern: the same lines `LineParser` accepts."""
    rows = list(map(_GROUPS, filter(None, map(_COMBINED_STRICT.match, lines))))
    if len(rows) < len(lines):
        general = list(map(_GROUPS, filter(None, map(_COMBINED_GENERAL.match, lines))))
        if len(general) > len(rows):
            return general
    return rows


def _split_lines(text: str) -> list[str]:
    lines = [line + "\n" for line in text.split("\n")]
    if lines and lines[-1] == "\n":
        lines.pop()  # the text ended with a newline: no line after it
    return lines


def _combined_columns(parser: LineParser, rows: list[tuple[str, ...]], line_count: int,
                      get_lines: Callable[[], list[str]]) -> Columns:
    """Columns of matched combined rows; the lines are only split again when some failed."""
    # One C-level pass per column (about twice as fast as transposing with zip(*rows)).
    clients, stamps, methods, targets, statuses, agents = (
        list(map(itemgetter(column), rows)) for column in range(6))
    if None in agents:  # common-format lines matched one at a time have no agent group
        agents = [agent or "" for agent in agents]
    times_s = _clf_times(parser.times, stamps)
    if None in times_s:
        keep = [t is not None for t in times_s]
        clients, methods, targets, statuses, agents, times_s = (
            [value for value, k in zip(column, keep, strict=True) if k]
            for column in (clients, methods, targets, statuses, agents, times_s))
    status_of = {text: int(text) for text in set(statuses)}
    if len(targets) != line_count:
        _count_malformed(parser, len(targets), get_lines())
    times = cast("list[float]", times_s)  # the rows whose stamp did not parse were dropped above
    return Columns(targets, times, methods, list(map(status_of.__getitem__, statuses)), clients,
                   agents)


def _count_malformed(parser: LineParser, parsed: int, lines: list[str]) -> None:
    """Count the non-blank lines of `lines` that gave no row (`parsed` rows did) as
    malformed on `parser`, and sample them as LineParser does."""
    bad = sum(1 for line in lines if line.strip()) - parsed
    if bad > 0:
        if len(parser.malformed_samples) < LineParser.SAMPLE_LIMIT:
            sampler = LineParser(parser.log_format)  # find samples the slow way
            sampler.parse_many(lines)
            room = LineParser.SAMPLE_LIMIT - len(parser.malformed_samples)
            parser.malformed_samples.extend(sampler.malformed_samples[:room])
        parser.malformed += bad


_FIELD_ERRORS = (ValueError, KeyError, TypeError, IndexError, AttributeError)


def _regex_columns(parser: LineParser, lines: list[str]) -> Columns:
    """Columns of a named regex with a `target` group, equal to LineParser line by line: the
    lines are matched with `map`, each column cut from the groups in one C-level pass, and
    each distinct stamp, status and target converted or checked once (a line whose field
    fails is malformed, as LineParser's would be)."""
    regex = parser.log_format.compiled()
    rows = list(map(_GROUPS, filter(None, map(regex.match, lines))))
    index = regex.groupindex

    def column(name: str, default: Any = None) -> list[Any]:
        """The group's values, a missing or empty one replaced by `default` (when given)."""
        if name not in index:
            return [default] * len(rows)
        values = list(map(itemgetter(index[name] - 1), rows))
        if default is not None and (None in values or "" in values):
            values = [value or default for value in values]
        return values

    targets, stamps, statuses = column("target"), column("time"), column("status")
    time_of = {stamp: _field(parser.times.parse, stamp) for stamp in set(stamps)}
    status_of = {status: _field(int, status or 200) for status in set(statuses)}
    target_ok = {target: bool(target) and target[0] in "/h*" for target in set(targets)}
    columns = [targets, list(map(time_of.__getitem__, stamps)), column("method", "GET"),
               list(map(status_of.__getitem__, statuses)), column("client", ""),
               column("agent", "")]
    if not all(target_ok.values()) or None in time_of.values() or None in status_of.values():
        keep = [ok and time_s is not None and code is not None for ok, time_s, code in
                zip(map(target_ok.__getitem__, targets), columns[1], columns[3], strict=True)]
        columns = [list(compress(values, keep)) for values in columns]
    if len(columns[0]) != len(lines):
        _count_malformed(parser, len(columns[0]), lines)
    return Columns(*columns)


def _field(convert: Callable[[Any], Any], value: Any) -> Any:
    """`convert(value)`, or None when the field does not convert (a malformed line)."""
    try:
        return convert(value)
    except _FIELD_ERRORS:
        return None


# "MM:SS" -> seconds past the hour, for the bulk CLF conversion (keys as CLF writes them).
_MINUTE_SECOND = {f"{minute:02d}:{second:02d}": minute * 60 + second
                  for minute in range(100) for second in range(100)}


def _clf_times(times: TimeParser, stamps: list[str]) -> list[float | None]:
    """Epoch seconds of the stamps, each distinct stamp converted once; None marks a stamp
    that does not parse.

    When every distinct stamp is a plain CLF stamp, one comprehension adds the memoised hour
    to a table lookup of "MM:SS" (no call per stamp); otherwise each goes through
    TimeParser.parse, which gives the same value for the CLF ones.
    """
    distinct = set(stamps)
    try:
        bases = {key: times.clf_hour_base(key) for key in {s[:14] + s[20:] for s in distinct}
                 if len(key) >= 20 and key[2] == "/" and key[6] == "/"}
        parsed: dict[str, float | None] = {
            s: bases[s[:14] + s[20:]] + _MINUTE_SECOND[s[15:20]] for s in distinct
                  if len(s) >= 26}
    except (KeyError, ValueError, IndexError):
        parsed = {}
    if len(parsed) != len(distinct):
        parsed = {}
        for stamp in distinct:
            try:
                parsed[stamp] = times.parse(stamp)
            except (ValueError, IndexError):
                parsed[stamp] = None
    return list(map(parsed.__getitem__, stamps))
