"""What was in force when (Art. 20, Art. 19): the policy timeline read back from the audit log.

Art. 20 (第二十条): the log must answer for what happened, and what the gateway did depends on the policy
in force. Every policy the gateway loads is a record (``policy.load`` at start, ``policy.reload``)
carrying the SHA-256 of the exact text and the name of its kept copy (``policy_text``); its start and
stop are records too (``gateway.start``, ``gateway.stop``). ``PolicyTimeline`` takes those records in
log order and answers "which policy was in force at T" (``in_force``), and whether the gateway was
running then.

``OverseasRule`` is Art. 19's "overseas" as a given policy defined it (outside every listed network,
not a private or loopback address, and in no home country; an address of unknown country as
``geoip.unknown`` says), so `govgate audit show --overseas` judges each record by the policy in force
at its time, exactly as the gateway did (``govgate.core.decide.whereabouts``).

Pure: records in, answers out.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from govgate.core.audit_chain import record_time
from govgate.core.decide import CompiledPolicy, compile_policy, whereabouts
from govgate.core.networks import unmapped
from govgate.core.policy.load import read_policy_text
from govgate.core.policy.model import Policy

LOAD_EVENTS = frozenset({"policy.load", "policy.reload"})
START_EVENT = "gateway.start"
STOP_EVENT = "gateway.stop"


@dataclass(frozen=True, slots=True)
class PolicyPeriod:
    """A policy in force from ``start`` (the record that loaded it) until the next load or a stop."""

    start: datetime
    sha256: str
    text_name: str | None  # the kept copy in the audit directory (None: a log from before texts were kept)
    event: str  # policy.load | policy.reload
    file: str | None  # policy_file as recorded
    end: datetime | None = None  # the next load, or the gateway's stop; None: still in force at the log's end
    stopped: bool = False  # ``end`` is a `gateway.stop` (nothing was in force after it until a start)


class PolicyTimeline:
    """Policy periods in log order, fed one record at a time (``add``)."""

    def __init__(self) -> None:
        self.periods: list[PolicyPeriod] = []
        self._starts: list[datetime] = []

    def add(self, record: Mapping[str, object]) -> None:
        event = record.get("event")
        if event not in LOAD_EVENTS and event != STOP_EVENT:
            return
        when = record_time(record)
        sha = record.get("policy_sha256")
        if when is None or not isinstance(sha, str):
            return
        if self.periods and self.periods[-1].end is None and self._starts[-1] <= when:
            last = self.periods[-1]
            self.periods[-1] = PolicyPeriod(last.start, last.sha256, last.text_name, last.event, last.file, when,
                                            stopped=event == STOP_EVENT)
        if event == STOP_EVENT or record.get("decision") not in ("ok", None):
            return
        name = record.get("policy_text")
        file = record.get("policy_file")
        self.periods.append(PolicyPeriod(when, sha, name if isinstance(name, str) else None, str(event),
                                         file if isinstance(file, str) else None))
        self._starts.append(when)

    def in_force(self, at: datetime) -> PolicyPeriod | None:
        """The period whose policy was in force at ``at``: the latest load at or before it (None: none yet). A
        period that ended with a stop before ``at`` is still returned (``stopped``): the caller says so."""
        i = bisect.bisect_right(self._starts, at)
        return self.periods[i - 1] if i else None

    def overlapping(self, since: datetime | None, until: datetime | None) -> list[PolicyPeriod]:
        """The periods in force at some moment of [since, until]."""
        out = []
        for period in self.periods:
            if until is not None and period.start > until:
                continue
            if since is not None and period.end is not None and period.end < since:
                continue
            out.append(period)
        return out


def policy_from_text(text: bytes, source: str) -> Policy | None:
    """The policy a kept text holds (files it names are not checked: they may be long gone); None if it no
    longer loads (a kept text from an older release, say)."""
    try:
        return read_policy_text(text.decode("utf-8-sig"), Path(source)).policy
    except UnicodeDecodeError:
        return None


class OverseasRule:
    """Art. 19's "overseas" as one policy defined it."""

    def __init__(self, policy: Policy) -> None:
        self.compiled: CompiledPolicy = compile_policy(policy)

    def overseas(self, client: object, country: object) -> bool:
        """Whether a record's client (address text) with its recorded GeoIP country was overseas."""
        if not isinstance(client, str):
            return False
        try:
            address = unmapped(ipaddress.ip_address(client))
        except ValueError:
            return False
        code = country.upper() if isinstance(country, str) and country else None
        return whereabouts(address, code, self.compiled)[0]
