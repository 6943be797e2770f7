"""`govgate audit show`: the records an auditor asks for, checked before they are shown (Art. 20, Art. 19).

Art. 20 (第二十条): access logs are kept so that they can be examined, with their integrity assured.
Two passes over one consistent snapshot of the log (sizes and head anchor taken under the lock):

1. a checked walk (``govgate.audit.history.scan_log``) from the first file that may hold a match — or,
   for ``--overseas``, from the last policy load before it, so the policy in force is known — to the end
   of the log, collecting every problem instead of stopping at the first;
2. the lines that may match (filtered on their bytes first, during the walk, up to ``KEEP_BYTES``; beyond
   that the files are read again), parsed and matched, and printed with a mark when the walk found them
   broken or (with the exported key) not vouched for.
   ``strict`` refuses to print anything from a log in which the walk found a problem.

Formats: a table for a terminal, one line per record otherwise (grep-able, ``key=value``), JSON Lines,
or CSV (RFC 4180, a header row) for spreadsheets. Lines the walk found unreadable are named on stderr,
never rendered; unprintable characters are escaped.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from govgate.audit.history import PolicyTexts, Scan, last_timeline_file, scan_log
from govgate.audit.verify import Progress, read_lines, snapshot_with_head
from govgate.core.audit_chain import file_day
from govgate.core.audit_keys import AuditKey
from govgate.core.audit_query import RecordFilter
from govgate.core.audit_walk import Unverified
from govgate.core.policy.model import Policy

RECORD_FIELDS = ("time", "event", "request_id", "client", "country", "device", "account", "method", "host",
                   "path", "rule", "decision", "reason", "article")
CHAIN_FIELDS = ("seq", "prev", "alg", "mac", "signature")
KEEP_BYTES = 32 << 20  # candidate lines kept from the checking walk (beyond: the files are read again)


class Format(StrEnum):
    TABLE = "table"
    LINES = "lines"
    JSON = "json"
    CSV = "csv"


@dataclass(frozen=True, slots=True)
class Shown:
    file: str
    line: int
    record: dict[str, object]
    problem: str | None  # why it does not verify (None: it does)


@dataclass(slots=True)
class ShowResult:
    shown: int = 0
    marked: int = 0
    unjudged: int = 0  # --overseas: records of a time for which no policy is known
    scan: Scan | None = None
    refused: bool = False  # --strict and the log does not verify


class Marks:
    """What a shown line is marked with, by its ordinal: a finding at it, or a range no signature vouches for."""

    def __init__(self, scan: Scan) -> None:
        self.at, unverified = scan.problems_by_ordinal()
        self.ranges: list[Unverified] = sorted(unverified, key=lambda u: u.start)
        self.starts = [u.start for u in self.ranges]

    def problem(self, ordinal: int) -> str | None:
        found = self.at.get(ordinal)
        if found is not None:
            return found
        i = bisect.bisect_right(self.starts, ordinal) - 1
        if i >= 0 and ordinal < self.ranges[i].end:
            return f"unverified: {self.ranges[i].why}"
        return None


def find_records(directory: Path, key: AuditKey, flt: RecordFilter, tz: ZoneInfo, *,
                 fallback: Policy | None = None, progress: Progress | None = None,
                 strict: bool = False, each: Callable[[Shown], None], result: ShowResult | None = None) -> ShowResult:
    """Check the part of the log that matters, then hand each matching record to ``each``, oldest first."""
    out = result or ShowResult()
    listing, head = snapshot_with_head(directory)
    names = [name for name, _ in listing]
    window = [(name, size) for name, size in listing if (day := file_day(name)) is None or flt.may_hold(day, tz)]
    if not window:
        return out
    start = window[0][0]
    if flt.overseas:
        start = last_timeline_file(directory, names, start) or start
    # Lines the filter's bytes let through are kept from the walk (up to KEEP_BYTES), so a selective query reads
    # the log once; past that, they are dropped and the files are read a second time.
    kept: list[tuple[str, int, bytes]] = []
    kept_bytes = [0]
    in_window = {name for name, _ in window}

    def worth_keeping(line: bytes) -> bool:  # a line ``flt.candidates`` let through
        if not flt.overseas:
            return True
        client = _raw_str(line, b'"client":')  # a private address is home whatever the policy
        return client is not None and not client.startswith(_PRIVATE_V4)

    def keep(name: str, lines: Sequence[bytes], start: int, stop: int, lineno: int, ordinal: int) -> None:
        if kept_bytes[0] > KEEP_BYTES or name not in in_window:
            return
        for index in flt.candidates(lines, start, stop):
            line = lines[index]
            if worth_keeping(line):
                kept.append((name, lineno + index - start, line))
                kept_bytes[0] += len(line)
        if kept_bytes[0] > KEEP_BYTES:
            kept.clear()

    scan = scan_log(directory, key, start=None if start == names[0] else start, progress=progress,
                    files=(listing, head), visit=keep)
    out.scan = scan
    if strict and scan.findings:
        out.refused = True
        return out
    marks = Marks(scan)
    texts = PolicyTexts(directory, fallback)

    verdicts: dict[tuple[str, object, object], bool] = {}

    def judged(client: object, country: object, when: datetime | None) -> bool | None:
        """Overseas by the policy in force at ``when`` (None: no policy known for then); remembered per address."""
        period = scan.timeline.in_force(when) if when is not None else None
        key = (period.sha256 if period is not None else "", client, country)
        verdict = verdicts.get(key)
        if verdict is None:
            rule = texts.overseas_rule(period)
            if rule is None:
                return None
            if len(verdicts) > 200_000:
                verdicts.clear()
            verdict = verdicts[key] = rule.overseas(client, country)
        return verdict

    def overseas(record: Mapping[str, object], when: datetime | None) -> bool:
        verdict = judged(record.get("client"), record.get("country"), when)
        if verdict is None:
            out.unjudged += 1
            return False
        return verdict

    rules = [texts.overseas_rule(p) for p in scan.timeline.periods] or [texts.overseas_rule(None)]
    # Home whatever policy was in force: a home country of every policy (a private or loopback address is always).
    home_always = frozenset.intersection(*(r.compiled.home_countries for r in rules if r is not None)) \
        if rules and all(r is not None for r in rules) else frozenset()

    def may_be_overseas(line: bytes) -> bool:
        """Judged from the line's bytes, before it is parsed: most records of a log are from home."""
        if b"\\" in line:
            return True  # escapes: let the parsed record decide
        client = _raw_str(line, b'"client":')
        if client is None or client.startswith(_PRIVATE_V4):
            return False
        country = _raw_str(line, b'"country":')
        if country is not None and country.upper() in home_always:
            return False
        stamp = _raw_str(line, b'"time":')
        try:
            when = datetime.fromisoformat(stamp) if stamp is not None else None
        except ValueError:
            return True  # let the parsed record decide
        return judged(client, country, when) is not False

    candidate = flt.candidate
    if flt.overseas:
        def candidate(line: bytes) -> bool:
            return flt.candidate(line) and may_be_overseas(line)

    def consider(name: str, at: int, line: bytes) -> None:
        if not candidate(line):
            return
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            return  # the walk names it (and `verify` does)
        if not isinstance(record, dict) or not flt.matches(record, overseas):
            return
        first = scan.first_ordinal.get(name)
        problem = marks.problem(first + at - 1) if first is not None else "unverified: not walked"
        out.shown += 1
        if problem is not None:
            out.marked += 1
        each(Shown(name, at, record, problem))

    if kept_bytes[0] <= KEEP_BYTES:
        for name, at, line in kept:
            consider(name, at, line)
        return out
    kept.clear()
    for name, size in window:
        def visit(lines: Sequence[bytes], start: int, stop: int, lineno: int, name: str = name) -> None:
            for index in range(start, stop):
                consider(name, lineno + index - start, lines[index])

        read_lines(directory / name, size, visit, progress)
    return out


# Private and loopback IPv4 addresses are home whatever the policy (Art. 19 as ``geoip.is_always_home`` has it):
# the common ones, recognised from their text alone. Anything else is judged by the policy in force.
_PRIVATE_V4 = ("10.", "127.", "192.168.", *(f"172.{n}." for n in range(16, 32)))


def _raw_str(line: bytes, key: bytes) -> str | None:
    """A plain string value (no escapes) of a top-level key of a canonical line; None when null, absent or escaped."""
    i = line.find(key)
    if i < 0 or line[i + len(key): i + len(key) + 1] != b'"':
        return None
    start = i + len(key) + 1
    end = line.find(b'"', start)
    value = line[start:end]
    if end < 0 or b"\\" in value:
        return None
    return value.decode("utf-8", "replace")


# -- rendering -------------------------------------------------------------------------------------


def printable(text: str) -> str:
    """Lone surrogates (from ``\\ud800`` escapes in an edited line) cannot be printed as UTF-8: escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _text(value: object) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def grant_text(grant: object) -> str:
    """``#0 参加国际会议`` for a grant field."""
    if not isinstance(grant, Mapping):
        return "-"
    return f"#{grant.get('index')} {grant.get('reason') or ''}".strip()


def format_row(record: Mapping[str, object]) -> str:
    """One line for a person or grep: time, decision, event, account, client (country), request, rule, reason."""

    def field(name: str) -> str:
        return _text(record.get(name))

    target = f"{record.get('host') or ''}{record.get('path') or ''}"
    request = " ".join(v for v in (str(record.get("method") or ""), target) if v)
    client = field("client") + (f" ({record['country']})" if record.get("country") else "")
    parts = [
        field("time"),
        field("decision"),
        field("event"),
        f"account={field('account')}",
        f"client={client}",
        f"device={field('device')}",
        request or "-",
        f"rule={field('rule')}",
        f"reason={field('reason')}",
        f"{field('article')}",
        f"id={field('request_id')}",
    ]
    if record.get("grant") is not None:
        parts.append(f"grant={grant_text(record.get('grant'))}")
    return "  ".join(parts)


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


def fit(text: str, width: int) -> str:
    """``text`` cut (with …) or padded to ``width`` terminal columns (CJK characters take two)."""
    if display_width(text) <= width:
        return text + " " * (width - display_width(text))
    out, used = [], 0
    for c in text:
        w = 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1
        if used + w > width - 1:
            break
        out.append(c)
        used += w
    return "".join(out) + "…" + " " * (width - 1 - used)


TABLE_COLUMNS: tuple[tuple[str, int], ...] = (
    ("", 1), ("TIME", 19), ("EVENT", 16), ("DECISION", 8), ("REASON", 11), ("ACCOUNT", 12), ("CLIENT", 22),
    ("CC", 3), ("DEVICE", 12), ("REQUEST", 34), ("RULE", 16), ("GRANT", 16), ("ID", 16),
)


class Table:
    """Fixed columns, so that a million rows stream without being measured first."""

    def __init__(self, out: TextIO, tz: ZoneInfo) -> None:
        self.out = out
        self.tz = tz
        self.header = False

    def row(self, shown: Shown) -> None:
        if not self.header:
            self.header = True
            self.out.write(printable("  ".join(fit(name, w) for name, w in TABLE_COLUMNS).rstrip()) + "\n")
        r = shown.record
        when = r.get("time")
        try:
            local = datetime.fromisoformat(str(when)).astimezone(self.tz).strftime("%Y-%m-%d %H:%M:%S")
        except ValueError:
            local = _text(when)
        request = " ".join(v for v in (str(r.get("method") or ""), f"{r.get('host') or ''}{r.get('path') or ''}")
                           if v) or "-"
        cells = ("!" if shown.problem else "", local, _text(r.get("event")), _text(r.get("decision")),
                 _text(r.get("reason")), _text(r.get("account")), _text(r.get("client")), _text(r.get("country")),
                 _text(r.get("device")), request, _text(r.get("rule")), grant_text(r.get("grant")),
                 _text(r.get("request_id")))
        line = "  ".join(fit(c, w) for c, (_, w) in zip(cells, TABLE_COLUMNS, strict=True)).rstrip()
        if shown.problem:
            line += f"\n   ! {shown.file}:{shown.line}: {shown.problem}"
        self.out.write(printable(line) + "\n")


CSV_COLUMNS = (*RECORD_FIELDS, "grant_index", "grant_reason", "extra", "file", "line", "verified")


class CsvRows:
    """RFC 4180 CSV with a header row: the fields every record has (``docs/audit.md``), the grant,
    other fields as JSON, and the check."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.buffer = io.StringIO()
        self.writer = csv.writer(self.buffer, lineterminator="\r\n")
        self.header = False

    def row(self, shown: Shown) -> None:
        if not self.header:
            self.header = True
            self.writer.writerow(CSV_COLUMNS)
        r = shown.record
        grant = r.get("grant") if isinstance(r.get("grant"), Mapping) else {}
        assert isinstance(grant, Mapping)
        extra = {k: v for k, v in r.items() if k not in RECORD_FIELDS and k not in CHAIN_FIELDS and k != "grant"}
        self.writer.writerow([
            *("" if r.get(name) is None else _text(r.get(name)) for name in RECORD_FIELDS),
            "" if grant.get("index") is None else grant.get("index"), grant.get("reason") or "",
            json.dumps(extra, ensure_ascii=False, separators=(",", ":"), sort_keys=True) if extra else "",
            shown.file, shown.line, shown.problem or "ok",
        ])
        self.out.write(printable(self.buffer.getvalue()))
        self.buffer.seek(0)
        self.buffer.truncate()


def json_line(shown: Shown) -> str:
    """The record as it is in the log; one that does not verify carries ``_verify`` saying why."""
    record = shown.record if shown.problem is None else {**shown.record, "_verify": shown.problem}
    return printable(json.dumps(record, ensure_ascii=False, separators=(",", ":")))


def problems_summary(result: ShowResult, directory: Path, limit: int = 5) -> Iterable[str]:
    scan = result.scan
    if scan is None:
        return
    for finding in scan.findings[:limit]:
        yield f"{directory / finding.file}:{finding.line}: {finding.what}"
    if len(scan.findings) > limit:
        yield f"... and {len(scan.findings) - limit} more (govgate audit verify names the first)"
