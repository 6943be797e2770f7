"""The gateway's health as it is now, for the ``health`` page and ``/metrics`` alike (one account of it).

``observe(runtime)`` pings the store (the one call that waits) and reads the rest from the runtime: the audit
writer, whether the last reload was refused, the GeoIP database's build time; ``govgate.core.health`` says what
that means.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

from govgate.core.health import HealthFacts, HealthReason, geoip_age, health_reasons
from govgate.errors import StoreUnavailable
from govgate.metrics import GatewayState
from govgate.runtime import Runtime
from govgate.workers import current_worker, workers_alive


@dataclass(frozen=True, slots=True)
class Observed:
    facts: HealthFacts
    reasons: tuple[HealthReason, ...]
    policy_version: int
    data_version: int
    workers: dict[str, Any] | None = None  # `govgate run --workers N`: this worker, and how many are alive

    @property
    def geoip_age_seconds(self) -> float | None:
        age = geoip_age(self.facts.geoip_built, self.facts.now)
        return None if age is None else age.total_seconds()

    def gauges(self, runtime: Runtime) -> GatewayState:
        writer = runtime.audit_writer
        return GatewayState(store_reachable=self.facts.store_reachable, audit_writable=self.facts.audit_writable,
                            audit_queued=writer.queued, audit_lost=writer.lost, policy_version=self.policy_version,
                            data_version=self.data_version, geoip_age_seconds=self.geoip_age_seconds,
                            policy_refused=self.facts.policy_refused)


async def observe(runtime: Runtime) -> Observed:
    store_ok = True
    try:
        await runtime.store.ping()
    except StoreUnavailable:
        store_ok = False
    workers: dict[str, Any] | None = None
    role = current_worker()
    if role is not None:
        seen = await asyncio.to_thread(workers_alive, role.status_file) if role.status_file is not None else None
        count, alive = seen if seen is not None else (role.count, None)
        workers = {"worker": role.index, "pid": os.getpid(), "count": count, "alive": alive}
    facts = HealthFacts(store_reachable=store_ok, audit_writable=runtime.audit_writer.healthy,
                        policy_refused=runtime.policy_refused, geoip_built=runtime.snapshot.geoip.built,
                        now=runtime.now(),
                        workers_down=workers is not None and workers["alive"] is not None
                        and workers["alive"] < workers["count"])
    return Observed(facts=facts, reasons=health_reasons(facts), policy_version=runtime.policy_version,
                    data_version=runtime.data_version, workers=workers)
