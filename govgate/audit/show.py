"""`govgate audit show`: the auditor's view — records filtered by account, address, decision, event and time.

Art. 20 (第二十条): access logs are kept so that they can be examined. This reads the same
consistent snapshot as ``verify`` (sizes taken under the lock) and does not check the chain;
``govgate audit verify`` does that.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from govgate.audit.verify import read_upto, snapshot
from govgate.core.audit_chain import file_day, record_time

type IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class RecordFilter:
    account: str | None = None
    client: IPNetwork | None = None  # an address is a /32 or /128
    decision: str | None = None
    event: str | None = None  # exact, or a prefix ending in "." or "*" ("login.", "login*")
    since: datetime | None = None  # aware, inclusive
    until: datetime | None = None  # aware, inclusive

    def matches(self, record: dict[str, object]) -> bool:
        if self.account is not None and record.get("account") != self.account:
            return False
        if self.decision is not None and record.get("decision") != self.decision:
            return False
        if self.event is not None and not _event_matches(self.event, record.get("event")):
            return False
        if self.client is not None and not _client_matches(self.client, record.get("client")):
            return False
        if self.since is not None or self.until is not None:
            when = record_time(record)
            if when is None:
                return False
            if self.since is not None and when < self.since:
                return False
            if self.until is not None and when > self.until:
                return False
        return True

    def may_hold(self, day: date, tz: ZoneInfo) -> bool:
        """Whether a day's file can hold matching records (one day of slack either side)."""
        if self.since is not None and day < self.since.astimezone(tz).date() - timedelta(days=1):
            return False
        return not (self.until is not None and day > self.until.astimezone(tz).date() + timedelta(days=1))


def parse_client(text: str) -> IPNetwork:
    """An address or CIDR; IPv4-mapped IPv6 counts as its IPv4 address. Raises ``ValueError``."""
    net = ipaddress.ip_network(text.strip(), strict=False)
    if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96:
        mapped = net.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.IPv4Network(f"{mapped}/{net.prefixlen - 96}")
    return net


def parse_time(text: str, tz: ZoneInfo) -> datetime:
    """ISO 8601 date or date-time; without an offset it is in ``tz``. Raises ``ValueError``."""
    value = datetime.fromisoformat(text.strip())
    return value if value.tzinfo is not None else value.replace(tzinfo=tz)


def _event_matches(pattern: str, event: object) -> bool:
    if not isinstance(event, str):
        return False
    if pattern.endswith("*"):
        return event.startswith(pattern[:-1])
    if pattern.endswith("."):
        return event.startswith(pattern)
    return event == pattern


def _client_matches(net: IPNetwork, client: object) -> bool:
    if not isinstance(client, str):
        return False
    try:
        address = parse_client(client).network_address
    except ValueError:
        return False
    return address.version == net.version and address in net


def find_records(directory: Path, flt: RecordFilter, tz: ZoneInfo) -> Iterator[tuple[str, int, dict[str, object]]]:
    """Matching records as (file, line, record), oldest first."""
    for name, size in snapshot(directory):
        day = file_day(name)
        if day is not None and not flt.may_hold(day, tz):
            continue
        data = read_upto(directory / name, size)
        for lineno, line in enumerate(data.split(b"\n"), 1):
            if not line:
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):  # bad JSON or UTF-8, or nesting past the recursion limit
                continue  # `verify` reports it
            if isinstance(record, dict) and flt.matches(record):
                yield name, lineno, record


def format_row(record: dict[str, object]) -> str:
    """One line for a person: time, decision, event, account, client (country), request, rule, reason."""

    def field(name: str) -> str:
        value = record.get(name)
        return "-" if value is None or value == "" else str(value)

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
    return "  ".join(parts)
