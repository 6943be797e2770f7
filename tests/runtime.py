"""The runtime addons are built with, for tests: ``InProcessRuntime``, a real in-process implementation of
``govgate.runtime.Runtime`` (the way httpx's ``MockTransport`` is a real transport, not a mock object).

It holds the test policy (``tests.policies``), the accounts the test gives it, keys from fixed bytes, an
audit sink that keeps every ``AuditEvent`` in a list (and counts them in the runtime's own Prometheus metrics,
as the gateway's does for ``/metrics``), the audit writer's health as plain values, a clock the test sets and
moves, and a ``MemoryStore`` (or any other ``Store``: a ``RedisStore`` on a real server). Fields are plain dataclass
fields, so a test swaps any of them (``runtime.policy = …``, as a reload does); the snapshot requests are
judged by is built from ``policy`` and ``accounts`` whenever they change. A wider Protocol needs one more
member here (``tests/test_runtime.py`` fails until the stub has every member).

``Clock`` is the one hand-moved clock of the suite (the audit writer takes it too).

Nothing here watches files: ``changed_files`` finds nothing and ``reload`` keeps what is in force. The policy
watcher is tested with ``live_runtime``, the gateway's own ``LiveRuntime`` started on the test policy in a
folder of the test's own.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from govgate.core.accounts import Accounts
from govgate.core.audit_event import AuditEvent, AuditScalar, ListSink
from govgate.core.decide import CompiledPolicy, compile_policy
from govgate.core.device_registry import DeviceRegistry, RegisteredDevice
from govgate.core.geoip import CountryLookup
from govgate.core.keys import GatewayKeys
from govgate.core.policy.model import Policy
from govgate.core.wall_time import WallClock
from govgate.files import open_country_lookup
from govgate.live_runtime import FileChanges, LiveRuntime
from govgate.metrics import GatewayMetrics, MetricsSink
from govgate.runtime import Runtime
from govgate.store.base import Store
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


class RecordingSink(MetricsSink):
    """The test runtime's audit sink: keeps every event, in order, and counts them as the gateway's sink does (in
    a registry of its own: tests never share counts)."""

    def __init__(self, metrics: GatewayMetrics | None = None) -> None:
        self.kept = ListSink()
        super().__init__(self.kept, metrics if metrics is not None else GatewayMetrics())

    @property
    def events(self) -> list[AuditEvent]:
        return self.kept.events


@dataclass(slots=True)
class AuditWriterState:
    """The audit writer's health as the addons read it; a test sets ``healthy = False`` for a full disk."""

    healthy: bool = True
    queued: int = 0
    lost: int = 0


@dataclass(frozen=True, slots=True)
class InProcessSnapshot:
    """What requests are judged by (``govgate.runtime.PolicySnapshot``), from the runtime's policy and accounts."""

    policy: Policy
    compiled: CompiledPolicy
    geoip: CountryLookup
    accounts: Accounts
    devices: DeviceRegistry


@functools.lru_cache(maxsize=16)
def _country_lookup(database: Path) -> CountryLookup:
    return open_country_lookup(database)


@dataclass(slots=True)
class InProcessRuntime:
    """``govgate.runtime.Runtime`` in process. ``InProcessRuntime()`` is the test policy at ``tests.policies.NOW``."""

    policy: Policy = field(default_factory=policy)
    accounts: Accounts = field(default_factory=Accounts)
    keys: GatewayKeys = field(default_factory=fixed_keys)
    audit: RecordingSink = field(default_factory=RecordingSink)
    audit_writer: AuditWriterState = field(default_factory=AuditWriterState)
    clock: Clock = field(default_factory=Clock)
    store: Store = field(default_factory=MemoryStore)
    server_tls: ServerTls | None = None  # plain HTTP, as the test policy is
    policy_version: int = 1
    data_version: int = 1
    policy_refused: bool = False  # a test sets it as a refused reload would
    started: tuple[list[str], dict[str, AuditScalar]] | None = None  # what record_start was told
    devices: DeviceRegistry = field(default_factory=DeviceRegistry)
    _built: InProcessSnapshot | None = field(default=None, init=False, repr=False, compare=False)
    _wall: WallClock = field(default_factory=WallClock, init=False, repr=False, compare=False)
    _last_now: tuple[datetime, tzinfo, datetime] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def snapshot(self) -> InProcessSnapshot:
        """The snapshot of the current ``policy``, ``accounts`` and ``devices`` (rebuilt when one is replaced)."""
        built = self._built
        if (built is None or built.policy is not self.policy or built.accounts is not self.accounts
                or built.devices is not self.devices):
            built = InProcessSnapshot(policy=self.policy, compiled=compile_policy(self.policy, self.devices.active()),
                                      geoip=_country_lookup(self.policy.geoip.database), accounts=self.accounts,
                                      devices=self.devices)
            self._built = built
        return built

    @property
    def metrics(self) -> GatewayMetrics:
        """The runtime's own metrics, which its audit sink counts into."""
        return self.audit.metrics

    def now(self) -> datetime:
        """The clock's time in the policy's timezone, as the Protocol promises."""
        moment, zone = self.clock(), self.policy.gateway.timezone
        last = self._last_now
        if last is not None and last[0] is moment and last[1] is zone:
            return last[2]  # the clock was not moved (reading a ZoneInfo time's instant costs more than the rest)
        now = self._wall.at(moment.timestamp(), zone)  # as the live runtime's clock reads time.time()
        self._last_now = (moment, zone, now)
        return now

    def changed_files(self) -> FileChanges | None:
        """No files are watched: the test replaces ``policy`` or ``accounts`` itself."""
        return None

    async def reload(self, *, why: str, force: bool = False, changes: FileChanges | None = None) -> bool:
        """Nothing on disk to read again: what is in force stays (False, as for a refused reload)."""
        return False

    async def enrol_device(self, device: RegisteredDevice) -> None:
        self.devices = self.devices.with_new(device, frozenset(d.id for d in self.policy.devices))

    def record_start(self, listen: list[str], tls: Mapping[str, AuditScalar]) -> None:
        self.started = (listen, dict(tls))

    @property
    def events(self) -> list[AuditEvent]:
        """Every audit event emitted so far, in order."""
        return self.audit.events

    def with_policy(self, policy: Policy) -> InProcessRuntime:
        """This runtime under another policy: accounts, keys, audit sink, clock and store are shared."""
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
