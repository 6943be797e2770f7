"""What every addon reads: the current policy and the services built from it.

The gateway holds one ``Runtime``. A policy reload swaps ``policy`` (and what is compiled from
it) in one assignment, so a request sees either the old policy or the new one, never a mix.
Addons take the runtime in their constructor; tests build one with ``MemoryStore`` and ``ListSink``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from govgate.core.audit_event import AuditSink
from govgate.core.keys import GatewayKeys
from govgate.core.policy.model import Policy
from govgate.tls_server import ServerTls


class Runtime(Protocol):
    @property
    def policy(self) -> Policy: ...

    @property
    def keys(self) -> GatewayKeys: ...

    @property
    def audit(self) -> AuditSink: ...

    @property
    def server_tls(self) -> ServerTls | None:
        """The TLS context browsers connect with (None: plain HTTP, ``insecure: true``)."""
        ...

    def now(self) -> datetime:
        """The current time, aware, in ``policy.gateway.timezone``."""
        ...
