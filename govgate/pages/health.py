"""``GET {prefix}/health``: the gateway's state as JSON, for load balancers and operators (``docs/operations.md``).

``status`` is ``ok`` only when all is well; otherwise ``degraded`` with ``reasons`` (``govgate.core.health``). The
page answers 503 only while staff paths fail closed (the store down, the audit log unwritable), 200 otherwise.
Nothing in it is secret: the policy's version and hash, the kind of store, the GeoIP database's age (and with
``govgate run --workers N``: which worker answered, its pid, and how many workers are alive).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from govgate.core.health import HealthReason, fails_closed
from govgate.pages.layout import Page


def health(*, policy_version: int, data_version: int, policy_sha256: str, store_kind: str, store_reachable: bool,
           audit_writable: bool, reasons: tuple[HealthReason, ...], geoip_age_days: float | None,
           workers: Mapping[str, Any] | None = None) -> Page:
    body = {
        "status": "degraded" if reasons else "ok",
        "reasons": [str(r) for r in reasons],
        "policy_version": policy_version,
        "data_version": data_version,
        "policy_sha256": policy_sha256,
        "store": {"reachable": store_reachable, "kind": store_kind},
        "audit": {"writable": audit_writable},
        "geoip": {"age_days": None if geoip_age_days is None else round(geoip_age_days, 1)},
    }
    if workers is not None:  # `govgate run --workers N`: which worker answers (pid), how many of N are alive
        body["workers"] = dict(workers)
    return Page(status=503 if fails_closed(reasons) else 200, body=json.dumps(body).encode(),
                content_type="application/json", headers=(("Cache-Control", "no-store"),))
