"""The questions an auditor asks of the log (Art. 20), as one filter: who, from where, what, when.

Art. 20 (第二十条): access logs are kept so that they can be examined; Art. 19 (第十九条) asks who reached
staff functions from abroad and under which grant. ``RecordFilter`` holds the conditions of
`govgate audit show` (all must hold; several ``--event`` patterns are alternatives):

- ``events``: glob patterns (``login.*``, ``admin.account.?*``); a pattern ending in ``.`` is a prefix;
- ``account``, ``decision``, ``rule``: exact; ``country``: ISO code, any case; ``client``: an address or CIDR;
- ``overseas``: the client was overseas by the policy in force at the record's time (the caller judges,
  with ``govgate.core.audit_history.OverseasRule``);
- ``grant``: the record names the overseas grant that admitted it (any, by index, or by words of its reason);
- ``since``/``until``: inclusive, aware.

``candidate`` looks at a line's bytes first, so most lines of a large log are never parsed: in canonical
JSON a field's value is written one way only, so a line lacking it cannot match. ``parse_when`` reads
a duration (``7d``, ``12h``, ``1h30m``: that long before ``now``) or an ISO 8601 time.

Pure: ``now`` is passed in.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from govgate.core.audit_chain import record_time
from govgate.core.durations import parse_duration

type IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
type Overseas = Callable[[Mapping[str, object], datetime | None], bool]  # (record, its time) → overseas then?

GLOB = frozenset("*?[")


def parse_client(text: str) -> IPNetwork:
    """An address or CIDR; IPv4-mapped IPv6 counts as its IPv4 address. Raises ``ValueError``."""
    net = ipaddress.ip_network(text.strip(), strict=False)
    if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96:
        mapped = net.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.IPv4Network(f"{mapped}/{net.prefixlen - 96}")
    return net


def parse_when(text: str, now: datetime, tz: ZoneInfo) -> datetime:
    """``7d``, ``12h``, ``30m``, ``90s`` (that long before ``now``), or an ISO 8601 date or time (without an offset:
    in ``tz``). Raises ``ValueError``."""
    value = text.strip()
    if value[-1:] in ("s", "m", "h", "d"):
        return now - parse_duration(value)
    when = datetime.fromisoformat(value)
    return when if when.tzinfo is not None else when.replace(tzinfo=tz)


@dataclass(frozen=True, slots=True)
class GrantFilter:
    """``--grant``: any grant (``index`` and ``words`` None), the grant of an index, or one whose reason has words."""

    index: int | None = None
    words: str | None = None

    @classmethod
    def parse(cls, text: str | None) -> GrantFilter:
        if text is None or text.strip().lower() in ("", "any"):
            return cls()
        if text.strip().isdigit():
            return cls(index=int(text.strip()))
        return cls(words=text.strip())

    def matches(self, grant: object) -> bool:
        if not isinstance(grant, Mapping):
            return False
        if self.index is not None:
            index = grant.get("index")
            return isinstance(index, int) and not isinstance(index, bool) and index == self.index
        if self.words is not None:
            reason = grant.get("reason")
            return isinstance(reason, str) and self.words.casefold() in reason.casefold()
        return True


def _raw(value: str) -> bytes | None:
    """How a string value is written in a canonical line (None when it cannot be: lone surrogates)."""
    try:
        return json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return None


@dataclass(frozen=True, slots=True)
class RecordFilter:
    events: tuple[str, ...] = ()
    account: str | None = None
    client: IPNetwork | None = None  # an address is a /32 or /128
    country: str | None = None
    overseas: bool = False
    decision: str | None = None
    rule: str | None = None
    grant: GrantFilter | None = None
    since: datetime | None = None  # aware, inclusive
    until: datetime | None = None  # aware, inclusive
    _needles: tuple[bytes, ...] = field(default=(), init=False, repr=False, compare=False)
    _event_needles: tuple[bytes, ...] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        needles = []
        for key, value in (("account", self.account), ("decision", self.decision), ("rule", self.rule),
                           ("country", self.country.upper() if self.country else None)):
            raw = _raw(value) if value is not None else None
            if raw is not None:
                needles.append(b'"' + key.encode() + b'":' + raw)
        if self.grant is not None:
            needles.append(b'"grant":{')
        object.__setattr__(self, "_needles", tuple(needles))
        if self.events and not any(set(p) & GLOB or p.endswith(".") for p in self.events):
            raws = [_raw(p) for p in self.events]
            if all(r is not None for r in raws):
                object.__setattr__(self, "_event_needles", tuple(b'"event":' + r for r in raws if r is not None))

    def candidate(self, line: bytes) -> bool:
        """False only for a line that cannot match (checked on its bytes, before parsing)."""
        for needle in self._needles:
            if needle not in line:
                return False
        events = self._event_needles
        return events is None or any(needle in line for needle in events)

    def candidates(self, lines: Sequence[bytes], start: int, stop: int) -> list[int]:
        """The indexes ``i`` in ``range(start, stop)`` for which ``candidate(lines[i])`` holds, in order: the same
        answer, but the first needle is looked for in one comprehension, so the lines of a large log that lack it
        (nearly all of them, for an account) cost no call each."""
        needles = self._needles
        if needles:
            first = needles[0]
            picked: Sequence[int] = [i for i in range(start, stop) if first in lines[i]]
        else:
            picked = range(start, stop)
        if len(needles) <= 1 and self._event_needles is None:
            return list(picked)
        candidate = self.candidate
        return [i for i in picked if candidate(lines[i])]

    def matches(self, record: Mapping[str, object], overseas: Overseas | None = None) -> bool:
        if self.account is not None and record.get("account") != self.account:
            return False
        if self.decision is not None and record.get("decision") != self.decision:
            return False
        if self.rule is not None and record.get("rule") != self.rule:
            return False
        if self.events and not any(event_matches(p, record.get("event")) for p in self.events):
            return False
        if self.country is not None:
            country = record.get("country")
            if not isinstance(country, str) or country.upper() != self.country.upper():
                return False
        if self.client is not None and not _client_matches(self.client, record.get("client")):
            return False
        if self.grant is not None and not self.grant.matches(record.get("grant")):
            return False
        when = record_time(record)
        if self.since is not None or self.until is not None:
            if when is None:
                return False
            if self.since is not None and when < self.since:
                return False
            if self.until is not None and when > self.until:
                return False
        return not (self.overseas and (overseas is None or not overseas(record, when)))

    def may_hold(self, day: date, tz: ZoneInfo) -> bool:
        """Whether a day's file can hold matching records (one day of slack either side)."""
        if self.since is not None and day < self.since.astimezone(tz).date() - timedelta(days=1):
            return False
        return not (self.until is not None and day > self.until.astimezone(tz).date() + timedelta(days=1))


def event_matches(pattern: str, event: object) -> bool:
    """A glob (``login.*``), a prefix ending in ``.`` (``login.``), or an exact event name."""
    if not isinstance(event, str):
        return False
    if pattern.endswith(".") and not set(pattern) & GLOB:
        return event.startswith(pattern)
    return fnmatch.fnmatchcase(event, pattern)


def _client_matches(net: IPNetwork, client: object) -> bool:
    if not isinstance(client, str):
        return False
    try:
        address = parse_client(client).network_address
    except ValueError:
        return False
    return address.version == net.version and address in net
