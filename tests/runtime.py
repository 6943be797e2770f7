"""The runtime addons are built with, for tests: ``InProcessRuntime``, a real in-process implementation of
``govgate.runtime.Runtime`` (the way httpx's ``MockTransport`` is a real transport, not a mock object).

It holds the test policy (``tests.policies``), keys from fixed bytes, an audit sink that keeps every
``AuditEvent`` in a list, a clock the test sets and moves, and a ``MemoryStore``. Fields are plain
dataclass fields, so a test swaps any of them (``runtime.policy = …``, as a reload does) and a wider
Protocol needs one more field here (``tests/test_runtime.py`` fails until the stub has every member).

``Clock`` is the one hand-moved clock of the suite (the audit writer takes it too).

Some addons still ask for the gateway's concrete ``LiveRuntime`` in their constructor rather than the
Protocol; ``live_runtime`` starts that one on the test policy in a folder of the test's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from govgate.core.audit_event import AuditEvent, ListSink
from govgate.core.keys import GatewayKeys
from govgate.core.policy.model import Policy
from govgate.live_runtime import LiveRuntime
from govgate.runtime import Runtime
from govgate.store.memory import MemoryStore
from govgate.tls_server import ServerTls
from tests.policies import NOW, policy, policy_data, write_policy

KEY = bytes(range(32))  # the test gateway key (gateway.key_file holds it as hex)


def fixed_keys(key: bytes = KEY) -> GatewayKeys:
    """The gateway keys derived from ``key``, as ``gateway.key_file`` holding it would give them."""
    return GatewayKeys.from_bytes(key)


class Clock:
    """A clock the test sets and moves by hand; call it for the time. Safe to read from another thread."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, now: datetime) -> None:
        self.now = now

    def advance(self, delta: timedelta) -> None:
        self.now = self.now + delta


@dataclass(slots=True)
class InProcessRuntime:
    """``govgate.runtime.Runtime`` in process. ``InProcessRuntime()`` is the test policy at ``tests.policies.NOW``."""

    policy: Policy = field(default_factory=policy)
    keys: GatewayKeys = field(default_factory=fixed_keys)
    audit: ListSink = field(default_factory=ListSink)
    clock: Clock = field(default_factory=Clock)
    store: MemoryStore = field(default_factory=MemoryStore)
    server_tls: ServerTls | None = None  # plain HTTP, as the test policy is

    def now(self) -> datetime:
        """The clock's time in the policy's timezone, as the Protocol promises."""
        return self.clock().astimezone(self.policy.gateway.timezone)

    @property
    def events(self) -> list[AuditEvent]:
        """Every audit event emitted so far, in order."""
        return self.audit.events

    def with_policy(self, policy: Policy) -> InProcessRuntime:
        """This runtime under another policy: keys, audit sink, clock and store are shared."""
        return replace(self, policy=policy)


def as_runtime(runtime: InProcessRuntime) -> Runtime:
    """Type-checks that ``InProcessRuntime`` implements the Protocol (mypy --strict tests/runtime.py)."""
    return runtime


@contextmanager
def live_runtime(workdir: Path, **sections: Any) -> Iterator[LiveRuntime]:
    """The gateway's own ``LiveRuntime``, loaded (``LiveRuntime.load``) from the test policy written to ``workdir``
    with ``sections`` replaced, and closed after. Its audit log and key are in ``workdir``."""
    (workdir / "secrets").mkdir(parents=True, exist_ok=True)
    path = write_policy(workdir / "policy.yaml", policy_data(workdir, **sections))
    runtime = LiveRuntime.load(path)
    try:
        yield runtime
    finally:
        asyncio.run(runtime.close())
