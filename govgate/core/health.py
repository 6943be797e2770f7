"""What ``GET {prefix}/health`` reports: whether all is well, and if not, why — as pure arithmetic on facts.

``health_reasons`` names every condition that makes the gateway ``degraded``, in a fixed vocabulary:

- ``store_down`` — the state store does not answer: staff paths fail closed (503; Art. 30's sessions and locks);
- ``audit_unwritable`` — audit records cannot be written: staff paths fail closed (503; Art. 20);
- ``policy_refused`` — the last reload of policy.yaml (or of the accounts file or GeoIP database) was refused:
  the previous good one is still in force, but what the operator saved is not (until a later good reload);
- ``worker_down`` — with ``govgate run --workers N``, fewer than N worker processes are alive (one died and is
  being restarted, ``govgate/workers.py``): the others serve meanwhile;
- ``geoip_stale`` — the GeoIP database was built more than ``GEOIP_MAX_AGE`` (35 days) ago: Art. 19's "overseas"
  is judged on old data (MaxMind publishes twice a week; a refresh that stopped is found here).

Only the first two fail staff paths closed, so only they make the page answer 503 (``fails_closed``): a load
balancer then takes the instance out. The others are for the operator, with the page still 200.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

GEOIP_MAX_AGE = timedelta(days=35)


class HealthReason(StrEnum):
    STORE_DOWN = "store_down"
    AUDIT_UNWRITABLE = "audit_unwritable"
    POLICY_REFUSED = "policy_refused"
    GEOIP_STALE = "geoip_stale"
    WORKER_DOWN = "worker_down"


FAIL_CLOSED = frozenset({HealthReason.STORE_DOWN, HealthReason.AUDIT_UNWRITABLE})


@dataclass(frozen=True, slots=True)
class HealthFacts:
    store_reachable: bool
    audit_writable: bool
    policy_refused: bool
    geoip_built: datetime | None  # the database's build time (its metadata); None: unknown
    now: datetime
    workers_down: bool = False  # `govgate run --workers N`: fewer than N workers alive


def geoip_age(built: datetime | None, now: datetime) -> timedelta | None:
    return None if built is None else now - built


def health_reasons(facts: HealthFacts) -> tuple[HealthReason, ...]:
    """Every reason the gateway is degraded, in the order above; empty when all is well."""
    reasons = []
    if not facts.store_reachable:
        reasons.append(HealthReason.STORE_DOWN)
    if not facts.audit_writable:
        reasons.append(HealthReason.AUDIT_UNWRITABLE)
    if facts.policy_refused:
        reasons.append(HealthReason.POLICY_REFUSED)
    if facts.workers_down:
        reasons.append(HealthReason.WORKER_DOWN)
    age = geoip_age(facts.geoip_built, facts.now)
    if age is not None and age > GEOIP_MAX_AGE:
        reasons.append(HealthReason.GEOIP_STALE)
    return tuple(reasons)


def fails_closed(reasons: tuple[HealthReason, ...]) -> bool:
    """True when staff paths are failing closed (503 for the page)."""
    return any(reason in FAIL_CLOSED for reason in reasons)
