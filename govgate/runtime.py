"""What every addon reads: the current policy and the services built from it, as a narrow interface.

The gateway holds one ``Runtime`` (``govgate.live_runtime.LiveRuntime``); tests hold an in-process one
(``tests/runtime.py``). A policy reload swaps the ``snapshot`` (the policy and what is compiled from it) in
one assignment, so a request that keeps the snapshot it started with (``RequestContext.snapshot``) sees
either the old policy or the new one, never a mix. Addons take the runtime in their constructor and use
nothing of it beyond these members:

- ``snapshot``, ``policy``: what requests are judged by;
- ``keys``: the gateway's purpose-bound keys (CSRF tokens, leave links, TOTP secrets);
- ``store``: sessions, pending logins, failure counts and locks (``govgate.store.base.Store``);
- ``audit``: where audit events go (Art. 20); ``audit_writer``: whether they are being written;
  ``metrics``: the process's Prometheus metrics (``govgate.metrics``), which count the events too;
- ``server_tls``: the TLS context browsers connect with (Art. 29);
- ``now()``: the clock; ``policy_version``: policy loads so far, ``data_version``: accounts file and GeoIP
  database loads so far, ``policy_refused``: the last reload was refused (``health``);
- ``changed_files()`` and ``reload()``: what the policy watcher calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from govgate.core.accounts import Accounts
from govgate.core.audit_event import AuditScalar, AuditSink
from govgate.core.decide import CompiledPolicy
from govgate.core.device_registry import DeviceRegistry, RegisteredDevice
from govgate.core.keys import GatewayKeys
from govgate.core.policy.model import IPAddress, Policy
from govgate.metrics import GatewayMetrics
from govgate.store.base import Store
from govgate.tls_server import ServerTls

if TYPE_CHECKING:
    from govgate.live_runtime import FileChanges


class Countries(Protocol):
    """The GeoIP database as requests use it (``govgate.core.geoip.CountryLookup``)."""

    def country(self, ip: IPAddress) -> str | None: ...

    @property
    def built(self) -> datetime | None:
        """When the database was built (its metadata), for its age; None when it does not say."""
        ...


class PolicySnapshot(Protocol):
    """Everything built from one good policy load that a request is judged by, from its start to its end."""

    @property
    def policy(self) -> Policy: ...

    @property
    def compiled(self) -> CompiledPolicy: ...

    @property
    def geoip(self) -> Countries: ...

    @property
    def accounts(self) -> Accounts: ...


class AuditHealth(Protocol):
    """The audit writer as the gate, ``health`` and ``/metrics`` see it (Art. 20)."""

    @property
    def healthy(self) -> bool:
        """False while records cannot be written: staff paths then fail closed (``audit.on_failure: deny``)."""
        ...

    @property
    def queued(self) -> int: ...

    @property
    def lost(self) -> int: ...


class Runtime(Protocol):
    @property
    def snapshot(self) -> PolicySnapshot:
        """The current snapshot; a request keeps the one it started with."""
        ...

    @property
    def policy(self) -> Policy:
        """The current snapshot's policy."""
        ...

    @property
    def keys(self) -> GatewayKeys: ...

    @property
    def store(self) -> Store: ...

    @property
    def audit(self) -> AuditSink: ...

    @property
    def audit_writer(self) -> AuditHealth: ...

    @property
    def metrics(self) -> GatewayMetrics: ...

    @property
    def server_tls(self) -> ServerTls | None:
        """The TLS context browsers connect with (None: plain HTTP, ``insecure: true``)."""
        ...

    @property
    def policy_version(self) -> int:
        """Good loads of policy.yaml since start (1 after the first); reloads of the accounts file or the GeoIP
        database alone do not count here."""
        ...

    @property
    def data_version(self) -> int:
        """Good loads of the accounts file and GeoIP database since start (1 after the first; a policy reload
        reads them too)."""
        ...

    @property
    def policy_refused(self) -> bool:
        """True from a refused reload (of policy.yaml, the accounts file or the GeoIP database) until a later good
        one: what is on disk is not what is in force."""
        ...

    def now(self) -> datetime:
        """The current time on the wall clock of ``policy.gateway.timezone``, with the instant's fixed UTC offset
        (``govgate.core.wall_time``: arithmetic across a summer-time change is arithmetic on instants)."""
        ...

    def changed_files(self) -> FileChanges | None:
        """Blocking (call in a thread): the policy, accounts file or GeoIP database changed and settled since
        the snapshot; None when nothing did."""
        ...

    async def reload(self, *, why: str, force: bool = False, changes: FileChanges | None = None) -> bool:
        """Apply ``changes`` (or, with ``force``, policy.yaml as it is now); True when a new snapshot is in force.
        A broken file is refused and the last good snapshot stays."""
        ...

    @property
    def devices(self) -> DeviceRegistry:
        """The device registry in force (issued certificates, enrolled browsers)."""
        ...

    async def enrol_device(self, device: RegisteredDevice) -> None:
        """Add a pending enrolled browser to the registry file (off the event loop) and to the registry in force,
        so the enrolment page knows the browser at once; ``DeviceError`` if it cannot be written."""
        ...

    def record_start(self, listen: list[str], tls: Mapping[str, AuditScalar]) -> None:
        """Art. 20: the ``gateway.start`` record (where it listens; Art. 29: the TLS settings it serves)."""
        ...
