"""The gateway's audit writer: requests only enqueue, one thread chains, writes and fsyncs (Art. 20).

Art. 20 (第二十条): access logs kept at least one year, backed up, integrity assured.

- ``emit`` appends to a deque and returns: O(1), no lock, no I/O, never raises.
- The writer thread wakes every ``flush_interval`` (200 ms) or as soon as ``batch_size`` events
  are queued, turns events into records, and appends them through ``AuditDir`` (lock, chain,
  write, fsync). It also seals a day at midnight (``gateway.timezone``) and prunes once a day.
- If a write fails (disk full, permissions, the directory replaced by a file), ``healthy`` goes
  False and ``last_error`` says why; the batch stays in hand and is retried every
  ``retry_interval`` until it succeeds, then ``healthy`` is True again. The gateway answers 503 on
  staff paths meanwhile when ``audit.on_failure`` is ``deny``.
- The queue is bounded (``max_queue`` events, 200,000 by default, about 100 MB). When it is full,
  new events are dropped — never silently: they are counted (``lost``) and, as soon as writing
  works again, an ``audit.lost`` record states how many were lost and since when.
- ``close`` flushes everything (SIGTERM). Records written are mirrored to syslog when configured.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import date, datetime
from zoneinfo import ZoneInfo

from govgate.audit.log_dir import AuditDir
from govgate.audit.syslog import SyslogMirror
from govgate.core.audit_chain import LOST_EVENT, chain_record, prepared_record
from govgate.core.audit_event import AuditEvent
from govgate.core.keys import GatewayKeys
from govgate.core.policy.model import Audit
from govgate.core.wall_time import wall_time
from govgate.errors import AuditWriteFailed

log = logging.getLogger(__name__)
# Seconds a round of writing may take before the writer counts as unhealthy: staff paths then fail closed
# (audit.on_failure: deny) until it finishes. Normal rounds take milliseconds; a slow fsync, a fraction of a second.
STALL_SECONDS = 3.0


class AuditWriter:
    """An ``AuditSink`` that writes the tamper-evident log from a background thread."""

    def __init__(
        self,
        audit: Audit,
        keys: GatewayKeys,
        tz: ZoneInfo,
        *,
        clock: Callable[[], datetime] | None = None,
        flush_interval: float = 0.2,
        batch_size: int = 4096,
        max_queue: int = 200_000,
        retry_interval: float = 0.5,
        stall_after: float = STALL_SECONDS,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self._audit = audit
        self._keys = keys
        self._tz = tz
        self._clock: Callable[[], datetime] = clock or (lambda: wall_time(datetime.now(tz), tz))
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._max_queue = max_queue
        self._retry_interval = retry_interval
        self._stall_after = stall_after
        self._step_since: float | None = None  # monotonic: when the writer thread's current round began
        # Told "write_failed" for each failed write and "record_lost" for each record dropped (``/metrics``).
        self._on_error = on_error
        self._queue: deque[AuditEvent] = deque()
        self._wake = threading.Event()
        self._progress = threading.Condition()  # notified after every round of the writer thread
        self._drop_lock = threading.Lock()
        self._lost_total = 0  # events dropped because the queue was full (only grows)
        self._lost_since: datetime | None = None
        self._lost_reported = 0
        self._pending: list[Mapping[str, object]] = []  # records taken from the queue, not yet written
        self._pending_events = 0  # how many of them came from the queue (not `audit.lost`)
        self._ok = True
        self._last_error: str | None = None
        self._written = 0
        self._stopping = False
        self._new_audit: Audit | None = None
        self._dir = AuditDir(audit.dir, keys, audit.algorithm, tz)
        self._syslog = self._make_syslog(audit)
        self._pruned_on: date | None = None
        self._primed = False  # the chain's tail has been read (and a closed day sealed) since start
        self._thread: threading.Thread | None = None

    # -- the hot path ------------------------------------------------------------------------

    def emit(self, event: AuditEvent) -> None:
        """Queue ``event``; never blocks, never raises."""
        queue = self._queue
        if len(queue) < self._max_queue:
            queue.append(event)
            if len(queue) == self._batch_size:
                self._wake.set()
            return
        self._count_lost(event)

    def _count_lost(self, event: AuditEvent) -> None:
        with self._drop_lock:
            if self._lost_since is None:
                self._lost_since = event.time
            self._lost_total += 1
        if self._on_error is not None:
            self._on_error("record_lost")

    # -- state for health, metrics and the gate ------------------------------------------------

    @property
    def healthy(self) -> bool:
        """False while records cannot be written, while the writer has been at one batch for longer than
        ``stall_after`` (the log's lock held by another process, a hung disk: Art. 20, no staff access that cannot be
        logged), or while the writer is not running."""
        thread = self._thread
        return self._ok and thread is not None and thread.is_alive() and self._stalled_for() is None

    def _stalled_for(self) -> float | None:
        since = self._step_since
        if since is None:
            return None
        taken = time.monotonic() - since
        return taken if taken > self._stall_after else None

    @property
    def last_error(self) -> str | None:
        thread = self._thread
        if thread is None:
            return "the audit writer is not started"
        if not thread.is_alive() and self._last_error is None:
            return "the audit writer has stopped"
        stalled = self._stalled_for()
        if stalled is not None and self._ok:
            return (f"the audit writer has been at one batch for {stalled:.0f} s without finishing (the log's lock "
                    "held by another process, or a disk that does not answer)")
        return self._last_error

    @property
    def queued(self) -> int:
        return len(self._queue) + self._pending_events

    @property
    def lost(self) -> int:
        return self._lost_total

    @property
    def written(self) -> int:
        return self._written

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="govgate-audit-writer", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 10.0) -> bool:
        """Write everything queued and stop. True when every record was written in time."""
        self._stopping = True
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.error("audit.close.timeout queued=%d error=%s", self.queued, self._last_error)
                return False
        if self._syslog is not None:
            self._syslog.close()
        return not self._queue and not self._pending

    def reconfigure(self, audit: Audit) -> None:
        """Take a reloaded policy's ``audit`` section; applied by the writer thread before its next write."""
        self._new_audit = audit
        self._wake.set()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything emitted so far is written. True if it was within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._progress:
            while self._queue or self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._wake.set()
                self._progress.wait(remaining)
        return True

    # -- the writer thread --------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                stopping = self._stopping
                self._step_since = time.monotonic()
                try:
                    self._step()
                except AuditWriteFailed as exc:
                    self._failed(str(exc))
                except Exception as exc:  # a bug must not stop the log silently: report, fail closed, retry
                    log.exception("audit.writer.error")
                    self._failed(f"audit writer error: {exc!r}")
                finally:
                    self._step_since = None
                with self._progress:
                    self._progress.notify_all()
                if stopping and not self._queue and not self._pending and self._ok:
                    return
                if not self._ok:
                    self._wake.wait(self._retry_interval)
                elif not self._full_batch_waiting():
                    # Fewer than a batch queued: wait for the next round (or a full batch, or close/flush). Writing
                    # at once whenever anything is queued meant a round for every fsync under load: the lock
                    # taken dozens of times a second by each worker, and the thread after the GIL as often.
                    self._wake.wait(self._flush_interval)
                self._wake.clear()
        finally:
            self._dir.close()

    def _full_batch_waiting(self) -> bool:
        """Whether to write again at once: a full batch is queued, or the writer is closing (everything goes)."""
        queued = len(self._queue)
        return queued >= self._batch_size or (self._stopping and queued > 0)

    def _failed(self, message: str) -> None:
        if self._on_error is not None:
            self._on_error("write_failed")
        if self._ok or message != self._last_error:
            log.error("audit.write.failed queued=%d error=%s", self.queued, message)
        self._ok = False
        self._last_error = message

    def _step(self) -> None:
        new_audit = self._new_audit
        if new_audit is not None:
            self._new_audit = None
            self._apply(new_audit)
        while True:
            now = self._clock()
            if not self._pending:
                self._take_batch(now)
            if not self._pending:
                break
            try:
                lines = self._dir.append(self._pending, now)
            except (TypeError, ValueError):
                # A caller put something JSON can't hold in `extra`: keep it as text rather than let
                # one bad event block the log (and, failing closed, the gateway) for good.
                self._pending = [_as_json_values(record) for record in self._pending]
                lines = self._dir.append(self._pending, now)
            self._written += self._pending_events
            self._pending = []
            self._pending_events = 0
            self._succeeded()
            self._step_since = time.monotonic()  # progress: a long backlog written batch by batch is no stall
            if self._syslog is not None:
                self._syslog.send(lines)
            if not self._full_batch_waiting():
                break  # the rest goes in the next round, ``flush_interval`` from now at most
        now = self._clock()
        if not self._primed or self._dir.rotation_due(now):
            # At start (a day may have ended while the gateway was down) and at midnight:
            # Art. 20 — seal the closed day and open the new one, even if no request comes.
            lines = self._dir.append([], now)
            self._primed = True
            if self._syslog is not None:
                self._syslog.send(lines)
        self._succeeded()
        today = now.astimezone(self._tz).date()
        if self._pruned_on != today:
            self._pruned_on = today
            self._step_since = None  # pruning old files writes no record: not a stall of the log's writing
            try:
                self._dir.prune(now, self._audit.retention_days, self._audit.prune)
            except AuditWriteFailed as exc:
                # Records are still being written: not a reason to refuse requests. Tried again tomorrow.
                log.error("audit.prune.failed error=%s", exc)

    def _succeeded(self) -> None:
        if not self._ok:
            log.warning("audit.write.recovered")
        self._ok = True
        self._last_error = None

    def _take_batch(self, now: datetime) -> None:
        queue = self._queue
        keys = self._keys
        batch: list[Mapping[str, object]] = []
        with self._drop_lock:
            lost = self._lost_total - self._lost_reported
            since = self._lost_since
            if lost:
                self._lost_reported = self._lost_total
                self._lost_since = None
        if lost:
            # Art. 20: never drop silently — say how many records could not be kept, and since when.
            batch.append(
                chain_record(LOST_EVENT, now, lost=lost, since=since.isoformat() if since is not None else None)
            )
        # Only this thread takes from the queue: the ``n`` events counted are there to take.
        n = min(len(queue), self._batch_size)
        popleft = queue.popleft
        # Encoded here, outside the log's lock; sealed to the same bytes (``docs/audit.md``, "Performance").
        batch.extend([prepared_record(popleft(), keys) for _ in range(n)])
        self._pending = batch
        self._pending_events = n

    def _apply(self, audit: Audit) -> None:
        old = self._audit
        self._audit = audit
        if audit.dir != old.dir or audit.algorithm != old.algorithm:
            self._dir.close()
            self._dir = AuditDir(audit.dir, self._keys, audit.algorithm, self._tz)
            self._pruned_on = None
            self._primed = False
        if audit.syslog != old.syslog:
            if self._syslog is not None:
                self._syslog.close()
            self._syslog = self._make_syslog(audit)
        if audit.retention_days != old.retention_days or audit.prune != old.prune:
            self._pruned_on = None

    @staticmethod
    def _make_syslog(audit: Audit) -> SyslogMirror | None:
        if audit.syslog is None:
            return None
        try:
            return SyslogMirror(audit.syslog)
        except ValueError as exc:
            log.error("audit.syslog.invalid error=%s", exc)
            return None


def _as_json_values(record: Mapping[str, object]) -> dict[str, object]:
    """The record with every value JSON can't represent replaced by its ``str``."""
    out: dict[str, object] = json.loads(json.dumps(dict(record), default=str, ensure_ascii=False))
    return out
