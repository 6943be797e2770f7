"""``GET {prefix}/health``: the gateway's state as JSON, for load balancers and operators (``docs/operations.md``).

200 when the state store answers and audit records are being written; 503 when either is down (staff paths
are then failing closed). Nothing in it is secret: the policy's version and hash, the kind of store.
"""

from __future__ import annotations

import json

from govgate.pages.layout import Page


def health(*, policy_version: int, policy_sha256: str, store_kind: str, store_reachable: bool,
           audit_writable: bool) -> Page:
    ok = store_reachable and audit_writable
    body = {
        "status": "ok" if ok else "degraded",
        "policy_version": policy_version,
        "policy_sha256": policy_sha256,
        "store": {"reachable": store_reachable, "kind": store_kind},
        "audit": {"writable": audit_writable},
    }
    return Page(status=200 if ok else 503, body=json.dumps(body).encode(), content_type="application/json",
                headers=(("Cache-Control", "no-store"),))
