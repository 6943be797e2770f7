"""The running gateway's state: the last good policy and everything built from it.

``LiveRuntime`` implements ``govgate.runtime.Runtime``. It owns one ``Snapshot`` (policy, compiled
rules, GeoIP reader, accounts) and swaps it in one assignment when ``policy.yaml``, the GeoIP database
or the accounts file changes. A broken edit is refused, its problems logged and audited, and the
last good snapshot stays in force. Loading happens in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Literal

from govgate.accounts_file import load_accounts
from govgate.audit.kept_policies import keep_policy_text
from govgate.audit.writer import AuditWriter
from govgate.core.accounts import Accounts, admin_marks
from govgate.core.audit_event import AuditEvent, AuditScalar, AuditSink, AuditValue
from govgate.core.decide import CompiledPolicy, compile_policy
from govgate.core.device_registry import DeviceRegistry, RegisteredDevice
from govgate.core.geoip import CountryLookup
from govgate.core.keys import GatewayKeys
from govgate.core.outbound import HostClassifier
from govgate.core.passwords import dummy_hash
from govgate.core.policy.model import Policy
from govgate.core.settle import FileLook, settled
from govgate.core.wall_time import WallClock, wall_time
from govgate.device_ca import ca_files, load_ca_cert
from govgate.devices_file import load_registry
from govgate.errors import GovGateError, PolicyError, StoreUnavailable
from govgate.files import (
    FileSignature,
    file_signature,
    load_key_file,
    load_policy,
    look_at,
    open_country_lookup,
    signature_of,
)
from govgate.log_lines import use_timezone
from govgate.metrics import GatewayMetrics, MetricsSink
from govgate.regular_file import read_regular
from govgate.store.base import Store
from govgate.store.memory import MemoryStore
from govgate.store.redis import RedisStore
from govgate.tls_server import ServerTls, warn_about_key_permissions
from govgate.workers import current_worker

logger = logging.getLogger(__name__)

MISSING_POLICY_SECONDS = 1.5  # policy.yaml gone this long (not a save by rename) is reported as a refused reload

@dataclass(slots=True)
class _Watched:
    """The watcher's memory of one file between polls: the last look, and since when it has been the same."""

    look: FileLook | None = None
    since_ns: int = 0


@dataclass(frozen=True, slots=True)
class FileChanges:
    """What a poll found settled: new policy bytes (and their signature), and/or a new accounts file or
    GeoIP database."""

    policy: tuple[bytes, FileSignature] | None
    data: bool
    policy_missing: bool = False  # policy.yaml has been gone for a settle time: reported as a refused reload, once


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything derived from one good policy load; replaced whole, never mutated."""

    policy: Policy
    compiled: CompiledPolicy
    geoip: CountryLookup
    accounts: Accounts
    classifier: HostClassifier
    policy_sig: FileSignature
    geoip_sig: FileSignature
    accounts_sig: FileSignature
    tls: ServerTls | None = None  # Art. 29: the context browsers connect with; None in plain-HTTP trial mode
    tls_sig: tuple[object, ...] = ()  # what `tls` was built from (settings and file signatures)
    devices: DeviceRegistry = field(default_factory=DeviceRegistry)  # issued and enrolled devices (Art. 19, 30)
    devices_sig: FileSignature = None
    device_ca_sig: FileSignature = None  # the device CA certificate, once `govgate device ca init` made it


def build_snapshot(policy: Policy, *, previous: Snapshot | None = None,
                   policy_sig: FileSignature | Literal["stat"] = "stat") -> Snapshot:
    """Blocking (file reads): call in a thread. Raises ``GovGateError`` on anything invalid. ``policy_sig``:
    the signature of the bytes ``policy`` was read from (by default the file's as it is now)."""
    geoip_sig = file_signature(policy.geoip.database)
    same_file = previous is not None and previous.policy.geoip.database == policy.geoip.database
    if previous is not None and same_file and previous.geoip_sig == geoip_sig:
        geoip = previous.geoip
    else:
        geoip = open_country_lookup(policy.geoip.database)
    accounts_sig = file_signature(policy.accounts_file)
    devices_sig = file_signature(policy.devices_file)
    registry = load_registry(policy.devices_file)
    ca_path = ca_files(policy).cert
    device_ca_sig = file_signature(ca_path)
    gw = policy.gateway
    tls_sig = (gw.insecure, gw.tls_cert, gw.client_ca, gw.request_client_cert, ca_path, device_ca_sig,
               file_signature(gw.tls_cert) if gw.tls_cert else None,
               file_signature(gw.client_ca) if gw.client_ca else None)
    # The same certificate: keep the context, and with it the TLS session cache (resumption survives reloads).
    if previous is not None and previous.tls_sig == tls_sig:
        server_tls = previous.tls
    else:
        # Art. 30: the gateway's own device CA, once made, is a CA client certificates must chain to.
        device_ca = load_ca_cert(policy)
        server_tls = ServerTls.load(policy, extra_cas=[device_ca] if device_ca is not None else [])
    return Snapshot(
        policy=policy,
        compiled=compile_policy(policy, registry.active()),
        geoip=geoip,
        accounts=load_accounts(policy.accounts_file),
        classifier=HostClassifier.from_policy(policy),
        policy_sig=file_signature(policy.source) if policy_sig == "stat" else policy_sig,
        geoip_sig=geoip_sig,
        accounts_sig=accounts_sig,
        tls=server_tls,
        tls_sig=tls_sig,
        devices=registry,
        devices_sig=devices_sig,
        device_ca_sig=device_ca_sig,
    )


def make_store(policy: Policy, metrics: GatewayMetrics | None = None) -> Store:
    if policy.state.redis_url:
        # The gateway answers a session looked up within the last half second from its near cache, which Redis
        # tells of every change (govgate/store/session_cache.py; docs/state.md).
        return RedisStore.from_url(policy.state.redis_url, policy.state.timeout,
                                   on_error=metrics.store_error if metrics is not None else None, session_cache=True)
    return MemoryStore()


class LiveRuntime:
    """The concrete ``Runtime`` of a running gateway."""

    def __init__(self, snapshot: Snapshot, keys: GatewayKeys, store: Store, audit: AuditWriter,
                 *, clock: Callable[[], datetime] | None = None, metrics: GatewayMetrics | None = None) -> None:
        self.snapshot = snapshot
        self._keys = keys
        self.store = store
        self.audit_writer = audit
        self.metrics = metrics if metrics is not None else GatewayMetrics()
        self._sink = MetricsSink(audit, self.metrics)  # every event is counted for /metrics on its way to the log
        self._clock = clock
        self._wall = WallClock()
        self._reload_lock = asyncio.Lock()
        self._watched: dict[Path, _Watched] = {}
        self._policy_missing_since: float | None = None  # monotonic: when policy.yaml was first seen gone
        self._policy_missing_reported = False
        self.policy_version = 1  # good loads of policy.yaml; shown by `health`
        self.data_version = 1  # good loads of the accounts file and GeoIP database (a policy load counts too)
        # The last reload of policy.yaml, or of the accounts file and GeoIP database alone, was refused (`health`).
        self._policy_refused = False
        self._data_refused = False
        self._started: float | None = None  # monotonic time of `record_start`
        self._kept: tuple[str | None, str | None] = (None, None)  # the kept policy text's name, or why it is not kept

    @classmethod
    def load(cls, policy_path: Path, *, clock: Callable[[], datetime] | None = None) -> LiveRuntime:
        """Blocking start-up load; raises ``PolicyError`` listing every problem."""
        try:
            data: bytes | None = read_regular(policy_path)
        except OSError:
            data = None  # load_policy says why
        policy = load_policy(policy_path, data=data)
        use_timezone(policy.gateway.timezone)  # log lines carry the time as the audit log does
        keys = load_key_file(policy.gateway.key_file)
        snapshot = build_snapshot(policy)
        dummy_hash()  # made now, not by the first login of an unknown account on the event loop
        warn_about_key_permissions(policy)
        metrics = GatewayMetrics()
        writer = AuditWriter(policy.audit, keys, policy.gateway.timezone, clock=clock, on_error=metrics.audit_error)
        writer.start()
        runtime = cls(snapshot, keys, make_store(policy, metrics), writer, clock=clock, metrics=metrics)
        runtime._kept = keep_policy(policy, data)
        runtime.audit.emit(runtime._policy_event("policy.load", "ok"))
        return runtime

    # -- Runtime protocol -------------------------------------------------------------------------
    @property
    def policy(self) -> Policy:
        return self.snapshot.policy

    @property
    def keys(self) -> GatewayKeys:
        return self._keys

    @property
    def audit(self) -> AuditSink:
        return self._sink

    @property
    def policy_refused(self) -> bool:
        return self._policy_refused or self._data_refused

    @property
    def server_tls(self) -> ServerTls | None:
        return self.snapshot.tls

    @property
    def devices(self) -> DeviceRegistry:
        return self.snapshot.devices

    async def enrol_device(self, device: RegisteredDevice) -> None:
        from govgate.devices_file import update_registry

        policy = self.snapshot.policy
        await asyncio.to_thread(update_registry, policy.devices_file,
                                lambda reg: reg.with_new(device, frozenset(d.id for d in policy.devices)))
        # Back on the event loop: the registry in force gains the pending device, unless a reload brought it
        # already. Added to what is in force, never replacing it with what was written: a revocation or approval
        # saved in between stays. A pending device admits nothing, so the compiled policy is unchanged.
        if self.snapshot.devices.get(device.id) is None:
            self.snapshot = replace(self.snapshot, devices=DeviceRegistry((*self.snapshot.devices, device)))

    def now(self) -> datetime:
        zone = self.snapshot.policy.gateway.timezone
        # On the zone's wall clock with the instant's own UTC offset: arithmetic across a summer-time change is
        # right (govgate.core.wall_time; Art. 19 grant windows, Art. 30 timeouts and lockouts).
        if self._clock is not None:
            return wall_time(self._clock(), zone)
        return self._wall.at(time.time(), zone)

    # -- reload -----------------------------------------------------------------------------------
    def _policy_event(self, event: str, decision: str, reason: str | None = None, *,
                      what: str = "policy") -> AuditEvent:
        """A record about the policy in force: its file, hash, version and (Art. 20) the kept copy of its text;
        ``what`` was (re)loaded: ``policy`` (policy.yaml, and with it every file it names) or ``data`` (the accounts
        file and GeoIP database alone)."""
        policy = self.snapshot.policy
        name, error = self._kept
        extra: dict[str, AuditValue] = {"policy_file": str(policy.source), "policy_sha256": policy.sha256,
                                        "policy_version": self.policy_version, "data_version": self.data_version,
                                        "what": what, "policy_text": name}
        if error is not None:
            extra["policy_text_error"] = error
        worker = current_worker()
        if worker is not None:
            extra["worker"] = worker.index  # which of `govgate run --workers N` (govgate/workers.py) says this
        return AuditEvent(event=event, time=self.now(), decision=decision, reason=reason, article="Art. 20",
                          extra=extra)

    def changed_files(self) -> FileChanges | None:
        """Blocking (stat calls, and reading a file that changed): call in a thread.

        What changed since the snapshot *and has settled* (``govgate.core.settle``): a half-written
        policy.yaml, accounts file or GeoIP database is never applied, only noted and looked at again at
        the next poll. A file that disappeared counts at once (there is nothing to wait for)."""
        snap = self.snapshot
        policy: tuple[bytes, FileSignature] | None = None
        if file_signature(snap.policy.source) is None:
            # Deleted (or moved away): the policy in force stays, and health must say the file is not it. Once
            # it has been gone for a settle time (a save by rename puts it back at once), and once only.
            now = time.monotonic()
            if self._policy_missing_since is None:
                self._policy_missing_since = now
            elif not self._policy_missing_reported and now - self._policy_missing_since >= MISSING_POLICY_SECONDS:
                self._policy_missing_reported = True
                return FileChanges(None, False, policy_missing=True)
        else:
            self._policy_missing_since, self._policy_missing_reported = None, False
        if file_signature(snap.policy.source) != snap.policy_sig:
            found = self._settled(snap.policy.source, snap.policy_sig)
            if found is not None:
                policy = (found[1], signature_of(found[0]))
        data = False
        watched = ((snap.policy.geoip.database, snap.geoip_sig), (snap.policy.accounts_file, snap.accounts_sig),
                   (snap.policy.devices_file, snap.devices_sig), (ca_files(snap.policy).cert, snap.device_ca_sig))
        for path, sig in watched:
            now_sig = file_signature(path)
            if now_sig != sig and (now_sig is None or self._settled(path, sig) is not None):
                data = True
        if policy is None and not data:
            return None
        return FileChanges(policy, data)

    def _settled(self, path: Path, applied: FileSignature) -> tuple[FileLook, bytes] | None:
        seen = look_at(path)
        memory = self._watched.setdefault(path, _Watched())
        now_ns = time.time_ns()
        if seen is None:
            memory.look = None
            return None
        look, _data = seen
        if not look.same_file_as(memory.look):
            memory.look, memory.since_ns = look, now_ns
            previous = None
        else:
            previous = memory.look
        if settled(look, previous, applied_inode=applied[2] if applied else None, now_ns=now_ns,
                   seen_since_ns=memory.since_ns):
            self._watched.pop(path, None)
            return seen
        return None

    async def reload(self, *, why: str, force: bool = False, changes: FileChanges | None = None) -> bool:
        """Re-read policy, GeoIP and accounts; keep the last good snapshot on any error.

        ``changes`` (from ``changed_files``) carries the settled policy bytes to apply; without them only the
        accounts file and GeoIP database are re-read. SIGHUP (``force``) reads policy.yaml as it is now:
        the operator says it is complete."""
        async with self._reload_lock:
            source = self.snapshot.policy.source
            previous = self.snapshot
            if force:
                loaded = await asyncio.to_thread(look_at, source)
                text = (loaded[1], signature_of(loaded[0])) if loaded is not None else None
            else:
                text = changes.policy if changes is not None else None
                if text is None:
                    # Only the accounts file or the GeoIP database changed: keep the policy in force.
                    return await self._reload_data(previous, why)
            try:
                if text is None:
                    policy = await asyncio.to_thread(load_policy, source)  # unreadable: says why
                    sig = file_signature(source)
                else:
                    policy = await asyncio.to_thread(partial(load_policy, source, data=text[0]))
                    sig = text[1]
                snapshot = await asyncio.to_thread(build_snapshot, policy, previous=previous, policy_sig=sig)
            except PolicyError as exc:
                for problem in exc.problems:
                    logger.error("policy.refused %s", problem)
                logger.error("policy.refused problems=%d kept=last-good", len(exc.problems))
                self._remember_refused(previous, source, text)
                event = self._policy_event("policy.refused", "refuse", f"{len(exc.problems)} problem(s)")
                self.audit.emit(replace(event, extra={
                    "policy_file": str(source), "policy_sha256": _sha256_of(source, text), "what": "policy",
                    "problems": "; ".join(str(p) for p in exc.problems)[:2000]}))
                return False
            except GovGateError as exc:
                logger.error("policy.refused error=%s kept=last-good", exc)
                self._remember_refused(previous, source, text)
                event = self._policy_event("policy.refused", "refuse", str(exc)[:500])
                self.audit.emit(replace(event, extra={"policy_file": str(source),
                                                      "policy_sha256": _sha256_of(source, text),
                                                      "policy_version": self.policy_version, "what": "policy"}))
                return False
            kept = await asyncio.to_thread(keep_policy, policy, text[0] if text is not None else None)
            if snapshot.policy.audit != previous.policy.audit:
                self.audit_writer.reconfigure(snapshot.policy.audit)
            self.snapshot = snapshot
            self._kept = kept
            use_timezone(snapshot.policy.gateway.timezone)
            self.policy_version += 1
            self.data_version += 1  # the accounts file and GeoIP database were read again with it
            self._policy_refused = self._data_refused = False  # the data files were read again with it
            logger.info("policy.reload why=%s version=%d sha256=%s", why, self.policy_version, policy.sha256[:12])
            self.audit.emit(self._policy_event("policy.reload", "ok", why))
            await self._apply_admin_marks(previous, snapshot)
            return True

    async def _reload_data(self, previous: Snapshot, why: str) -> bool:
        try:
            snapshot = await asyncio.to_thread(build_snapshot, previous.policy, previous=previous)
        except GovGateError as exc:
            logger.error("policy.refused error=%s kept=last-good", exc)
            # Seen: wait for the next change of these files before trying again.
            self.snapshot = replace(previous, accounts_sig=file_signature(previous.policy.accounts_file),
                                    geoip_sig=file_signature(previous.policy.geoip.database),
                                    devices_sig=file_signature(previous.policy.devices_file),
                                    device_ca_sig=file_signature(ca_files(previous.policy).cert))
            self._data_refused = True
            self.audit.emit(self._policy_event("policy.refused", "refuse", str(exc)[:500], what="data"))
            return False
        self.snapshot = replace(snapshot, policy_sig=previous.policy_sig)
        self.data_version += 1
        self._data_refused = False
        logger.info("policy.reload why=%s data_version=%d (accounts/GeoIP)", why, self.data_version)
        self.audit.emit(self._policy_event("policy.reload", "ok", why, what="data"))
        await self._apply_admin_marks(previous, snapshot)
        return True

    async def _apply_admin_marks(self, previous: Snapshot, current: Snapshot) -> None:
        """Art. 30: `govgate account unlock/logout` (and passwd, reset-totp, disable, which log out) leave marks
        in the accounts file; the store is the one place locks and sessions live, so apply them there."""
        marks = admin_marks(previous.accounts, current.accounts)
        for name in marks.unlock:
            try:
                await self.store.unlock(name)
                logger.info("account.unlock applied account=%s", name)
            except StoreUnavailable as exc:
                logger.warning("account.unlock not applied account=%s error=%s", name, exc)
        for name in marks.logout:
            try:
                ended = await self.store.delete_account_sessions(name)
                logger.info("account.logout applied account=%s sessions=%d", name, ended)
            except StoreUnavailable as exc:
                # Sessions opened before the mark are still refused by the gate on their next request.
                logger.warning("account.logout not applied account=%s error=%s", name, exc)

    def _remember_refused(self, previous: Snapshot, source: Path, text: tuple[bytes, FileSignature] | None) -> None:
        self._policy_refused = True
        # Don't retry the same broken policy bytes every poll: remember their signature as "seen".
        # The accounts file and GeoIP database keep their own signatures, so an account change made
        # while policy.yaml is broken is still picked up (against the last good policy).
        self.snapshot = replace(previous, policy_sig=text[1] if text is not None else file_signature(source))

    def record_start(self, listen: list[str], tls: Mapping[str, AuditScalar]) -> None:
        """Art. 20 (第二十条): the gateway's start is a record: its version, the policy in force and where it listens
        (Art. 29: with the TLS settings it serves)."""
        from govgate import __version__

        self._started = time.monotonic()
        event = self._policy_event("gateway.start", "ok")
        extra: dict[str, AuditValue] = {**event.extra, "version": __version__, "listen": list(listen),
                                        "tls": dict(tls), "pid": os.getpid()}
        worker = current_worker()
        if worker is not None:  # one of `govgate run --workers N`: which, of how many, started how many times again
            extra.update(workers=worker.count, restarts=worker.restarts)
        self.audit.emit(replace(event, extra=extra))

    async def close(self, reason: str = "shutdown") -> None:
        """Stop: the ``gateway.stop`` record is written and flushed (with everything queued) before this returns."""
        event = self._policy_event("gateway.stop", "ok", reason)
        uptime = None if self._started is None else round(time.monotonic() - self._started)
        self.audit.emit(replace(event, extra={**event.extra, "uptime_seconds": uptime, "pid": os.getpid()}))
        await self.store.close()
        await asyncio.to_thread(self.audit_writer.close)


def keep_policy(policy: Policy, data: bytes | None) -> tuple[str | None, str | None]:
    """Blocking: keep the text ``policy`` was loaded from in its audit directory (Art. 20), so that
    `govgate audit policy --at` can print it. Returns (its name there, None) or (None, why it is not kept);
    never raises: a policy is not refused because its copy could not be written (the record says so)."""
    if data is None:
        try:
            data = read_regular(policy.source)
        except OSError as exc:
            return None, f"cannot read {policy.source}: {exc.strerror or exc}"
    if hashlib.sha256(data).hexdigest() != policy.sha256:
        return None, "the file changed after it was loaded"
    try:
        return keep_policy_text(policy.audit.dir, data), None
    except OSError as exc:
        logger.error("audit.policy_text.failed dir=%s error=%s", policy.audit.dir, exc)
        return None, f"cannot keep the policy text: {exc.strerror or exc}"


def _sha256_of(path: Path, text: tuple[bytes, FileSignature] | None = None) -> str:
    if text is not None:
        return hashlib.sha256(text[0]).hexdigest()
    try:
        return hashlib.sha256(read_regular(path)).hexdigest()
    except OSError:
        return ""
