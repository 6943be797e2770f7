"""``govgate run --workers N``: N gateway processes on one listen address, kept running by a parent
(``docs/operations.md``, "Several worker processes").

The parent (``Supervisor``) does no proxying. It checks the policy, reserves the listen address (and
``metrics.listen``), then starts N ordinary ``govgate run`` processes with a ``GOVGATE_WORKER*`` environment
(``WorkerRole``). Each worker binds its own socket with ``SO_REUSEPORT`` on that address: the kernel spreads
new connections over the workers, and a worker that dies takes only its own socket with it.

- A worker that does not listen within ``START_TIMEOUT`` is asked for its threads' stacks (SIGUSR1, which
  ``become_worker`` hands to ``faulthandler``: they go to its stderr) and killed: at the first start the parent
  then stops them all with exit 1, saying which worker hung; later it counts as a death (restarted as below).
- A worker that dies is started again after ``restart_delay`` (0.5 s, doubling up to 30 s while it keeps
  dying within ``STABLE_SECONDS``), and the parent logs why (``worker.exit``).
- SIGHUP is forwarded to every worker (each reloads, as one gateway does); SIGTERM/SIGINT is forwarded as
  SIGTERM and the parent waits for every worker's drain (``gateway.drain_timeout``), then exits 0.
- State: several processes need the shared store, ``state.redis`` (``docs/state.md``); the parent refuses
  to start them without it.
- Audit (Art. 20): every worker appends to the one chain of ``audit.dir`` under its lock
  (``govgate/audit/log_dir.py``), so the log stays one verifiable whole; records say which worker wrote
  them where it matters (``gateway.start``, ``gateway.stop`` and the policy records carry ``worker``).
- Metrics: prometheus-client's multiprocess mode in a folder the parent makes empty for each run
  (``PROMETHEUS_MULTIPROC_DIR``); whichever worker answers a scrape merges every worker's values.
- Health: the parent keeps a small status file (``WORKERS_STATUS_NAME``) of the workers' pids; ``health``
  reports how many are alive (``govgate/health.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import faulthandler
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

logger = logging.getLogger(__name__)

ENV_WORKER: Final = "GOVGATE_WORKER"  # "<index>/<count>", index from 0
ENV_RESTARTS: Final = "GOVGATE_WORKER_RESTARTS"
ENV_READY_FD: Final = "GOVGATE_WORKER_READY_FD"
ENV_STATUS: Final = "GOVGATE_WORKERS_STATUS"
ENV_PARENT: Final = "GOVGATE_WORKERS_PARENT"
ENV_PORTS: Final = "GOVGATE_WORKER_PORTS"  # "listen=8443,redirect=80,metrics=9100": the reserved ports
ENV_NAMES: Final = (ENV_WORKER, ENV_RESTARTS, ENV_READY_FD, ENV_STATUS, ENV_PARENT, ENV_PORTS)
LISTENERS: Final = ("listen", "redirect", "metrics")  # gateway.listen, gateway.redirect_listen, metrics.listen

MAX_WORKERS: Final = 256
FIRST_BACKOFF: Final = 0.5  # seconds before the first restart of a worker that died
MAX_BACKOFF: Final = 30.0
STABLE_SECONDS: Final = 60.0  # a worker that ran this long before dying is restarted after FIRST_BACKOFF again
WORKERS_STATUS_NAME: Final = "workers.json"
START_TIMEOUT: Final = 60.0  # seconds a worker has from its start to listening (normally 1-3 s)
STACK_DUMP_WAIT: Final = 1.0  # seconds a hung worker gets to write its stacks before it is killed
HEARTBEAT_SECONDS: Final = 1.0  # a listening worker's event loop touches its heartbeat file this often
STALL_SECONDS: Final = 10.0  # a listening worker whose heartbeat is this old is stalled: stacks, killed, restarted
STOP_MARGIN_SECONDS: Final = 15.0  # beyond gateway.drain_timeout, for the audit flush and the store's close
_PR_SET_PDEATHSIG: Final = 1


# -- pure pieces ------------------------------------------------------------------------------------

def cpu_count() -> int:
    """The CPUs this process may run on (its affinity, which containers and systemd's CPUAffinity narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def parse_workers(text: str) -> int:
    """``--workers``: a number from 1 to ``MAX_WORKERS``, or ``auto`` (one per CPU)."""
    if text.strip().lower() == "auto":
        return min(cpu_count(), MAX_WORKERS)
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of processes or 'auto', not {text!r}") from None
    if not 1 <= count <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_WORKERS} processes (or 'auto'), not {count}")
    return count


def restart_delay(failures: int) -> float:
    """Seconds to wait before starting a worker again after its ``failures``-th death in a row (1, 2, …):
    0.5, 1, 2, 4, … up to ``MAX_BACKOFF``."""
    if failures <= 0:
        return 0.0
    return min(MAX_BACKOFF, FIRST_BACKOFF * 2.0 ** min(failures - 1, 32))


def failures_after(failures: int, ran_seconds: float, *, hung: bool = False) -> int:
    """Deaths in a row once a worker that ran ``ran_seconds`` died: a worker that had run ``STABLE_SECONDS``
    starts the count again, unless it was killed for never listening (``hung``: it never ran)."""
    return 1 if ran_seconds >= STABLE_SECONDS and not hung else failures + 1


@dataclass(frozen=True, slots=True)
class WorkerRole:
    """What a worker process knows of its place among the workers (from its environment)."""

    index: int
    count: int
    restarts: int = 0
    status_file: Path | None = None
    ready_fd: int | None = None
    parent_pid: int | None = None
    ports: tuple[tuple[str, int], ...] = ()  # the ports the parent reserved (a policy's port 0 made fixed)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WorkerRole | None:
        spec = env.get(ENV_WORKER)
        if not spec:
            return None
        index_text, _, count_text = spec.partition("/")

        def number(name: str) -> int | None:
            value = env.get(name)
            return int(value) if value else None

        status = env.get(ENV_STATUS)
        ports = tuple((k, int(v)) for k, _, v in (p.partition("=") for p in env.get(ENV_PORTS, "").split(",") if p))
        return cls(index=int(index_text), count=int(count_text), restarts=number(ENV_RESTARTS) or 0,
                   status_file=Path(status) if status else None, ready_fd=number(ENV_READY_FD),
                   parent_pid=number(ENV_PARENT), ports=ports)

    def env(self) -> dict[str, str]:
        out = {ENV_WORKER: f"{self.index}/{self.count}", ENV_RESTARTS: str(self.restarts)}
        for name, value in ((ENV_STATUS, self.status_file), (ENV_READY_FD, self.ready_fd),
                            (ENV_PARENT, self.parent_pid)):
            if value is not None:
                out[name] = str(value)
        if self.ports:
            out[ENV_PORTS] = ",".join(f"{k}={v}" for k, v in self.ports)
        return out

    def port(self, listener: str, configured: int) -> int:
        """The port a worker listens on for ``listener`` (one of ``LISTENERS``): the policy's, or for port 0 the one
        the parent reserved (every worker must use the same)."""
        if configured != 0:
            return configured
        return dict(self.ports).get(listener, 0)

    @property
    def name(self) -> str:
        return f"worker {self.index + 1} of {self.count}"

    @property
    def heartbeat_file(self) -> Path | None:
        return heartbeat_file(self.status_file.parent, self.index) if self.status_file is not None else None


def heartbeat_file(rundir: Path, index: int) -> Path:
    """What worker ``index`` touches from its event loop (``heartbeat``): its time is the loop's last sign of life."""
    return rundir / f"heartbeat-{index}"


_ROLE: list[WorkerRole | None] = []


def current_worker() -> WorkerRole | None:
    """This process's role when the parent of ``govgate run --workers N`` started it; None otherwise."""
    if not _ROLE:
        _ROLE.append(WorkerRole.from_env(os.environ))
    return _ROLE[0]


def listen_port(listener: str, configured: int) -> int:
    """The port to listen on for ``listener`` in this process (``WorkerRole.port``; ``configured`` outside workers)."""
    role = current_worker()
    return configured if role is None else role.port(listener, configured)


def reuse_port() -> bool:
    """Listen with ``SO_REUSEPORT``: in a worker, whose siblings listen on the same address."""
    return current_worker() is not None


def write_status(path: Path, pids: Sequence[int | None]) -> None:
    """Blocking: the parent's record of its workers' pids (None: not running), replaced atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"count": len(pids), "pids": list(pids)}), encoding="utf-8")
    os.replace(tmp, path)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def workers_alive(path: Path, now: float | None = None) -> tuple[int, int] | None:
    """Blocking: (how many workers there should be, how many are alive), from the parent's status file. A worker
    whose process exists but whose event loop has not written its heartbeat for ``STALL_SECONDS`` (stopped, or
    wedged) is not alive: it answers nobody. ``now``: ``time.monotonic()`` (the system's, the same in every
    process: a wall clock stepped by NTP or a resumed VM would make every worker look stalled at once)."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        pids = data["pids"]
        now = time.monotonic() if now is None else now
        alive = 0
        for index, pid in enumerate(pids):
            if isinstance(pid, int) and pid_alive(pid) and not _stalled(heartbeat_file(path.parent, index), now):
                alive += 1
        return int(data["count"]), alive
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _stalled(heartbeat: Path, now: float) -> bool:
    """The heartbeat was last written more than ``STALL_SECONDS`` before ``now`` (monotonic). No heartbeat yet (a
    worker still starting), or one being written, is not stalled."""
    try:
        return now - float(heartbeat.read_text(encoding="ascii")) > STALL_SECONDS
    except (OSError, ValueError):
        return False


# -- in a worker ------------------------------------------------------------------------------------

def become_worker(role: WorkerRole) -> None:
    """At a worker's start: die with the parent (SIGTERM, so it still drains) should the parent be killed, and
    write every thread's Python stack to stderr on SIGUSR1 (the parent asks when the worker is late to listen;
    an operator may too)."""
    with contextlib.suppress(AttributeError, OSError, RuntimeError, ValueError):
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if role.parent_pid is not None and os.getppid() != role.parent_pid:
        os.kill(os.getpid(), signal.SIGTERM)  # the parent died before the line above: follow it


async def heartbeat(role: WorkerRole) -> None:
    """In a listening worker, on its event loop: write the time to the heartbeat file every ``HEARTBEAT_SECONDS``.
    A loop that is wedged (or a process stopped) stops writing it, and the parent, seeing it stale, restarts the
    worker."""
    path = role.heartbeat_file
    if path is None:
        return
    while True:
        with contextlib.suppress(OSError):
            path.write_text(repr(time.monotonic()), encoding="ascii")  # the system's monotonic clock: every process's
        await asyncio.sleep(HEARTBEAT_SECONDS)


def report_ready(role: WorkerRole, urls: list[str]) -> None:
    """Tell the parent this worker listens (one JSON line on the pipe it was given), then close the pipe."""
    if role.ready_fd is None:
        return
    with contextlib.suppress(OSError):
        os.write(role.ready_fd, json.dumps(urls).encode() + b"\n")
    with contextlib.suppress(OSError):
        os.close(role.ready_fd)


# -- in the parent ----------------------------------------------------------------------------------

def reserve_address(host: str, port: int) -> socket.socket:
    """A socket bound (not listening) to ``host``:``port`` with ``SO_REUSEPORT``: it holds the port for the
    workers (a policy's port 0 becomes a fixed one), and takes no connection itself. Raises ``OSError`` when
    something else already listens there (checked with a plain bind first, which ``SO_REUSEPORT`` would pass)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    if port != 0:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


@dataclass
class _Slot:
    index: int
    proc: asyncio.subprocess.Process | None = None
    started: float = 0.0
    failures: int = 0
    restarts: int = 0
    urls: list[str] = field(default_factory=list)
    ready: bool = False
    ready_task: asyncio.Task[None] | None = None


class Supervisor:
    """The parent of ``count`` workers running ``command`` (a ``govgate run`` without ``--workers``)."""

    def __init__(self, command: Sequence[str], count: int, *, stop_timeout: float,
                 ports: Sequence[tuple[str, int]], upstream: str, start_timeout: float = START_TIMEOUT) -> None:
        self.command = list(command)
        self.count = count
        self.stop_timeout = stop_timeout
        self.start_timeout = start_timeout
        self.ports = tuple(ports)
        self.upstream = upstream
        self.slots = [_Slot(i) for i in range(count)]
        self.rundir = Path(tempfile.mkdtemp(prefix="govgate-workers-"))
        self.metrics_dir = self.rundir / "metrics"
        self.metrics_dir.mkdir()
        self.status_file = self.rundir / WORKERS_STATUS_NAME
        self._stop = asyncio.Event()
        self._changed = asyncio.Event()
        self._failed: str | None = None
        self._serving = False

    # -- life cycle -----------------------------------------------------------------------------
    async def run(self) -> int:
        """Start the workers, keep them running until SIGTERM/SIGINT, then stop them. 0, or 1 when they could not
        all start."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self._forward, signal.SIGHUP)
        self._write_status()
        keepers = [asyncio.create_task(self._keep(slot), name=f"govgate worker {slot.index}") for slot in self.slots]
        try:
            while not self._stop.is_set() and self._failed is None and not all(s.ready for s in self.slots):
                self._changed.clear()
                await self._changed.wait()
            if self._failed is not None:
                print(f"govgate: {self._failed}; stopping the other workers", file=sys.stderr, flush=True)
            elif not self._stop.is_set():
                self._serving = True
                for url in self.slots[0].urls:
                    print(f"govgate: listening on {url} → {self.upstream} ({self.count} workers, pids "
                          f"{' '.join(str(s.proc.pid) for s in self.slots if s.proc is not None)})", flush=True)
                await self._stop.wait()
            self._stop.set()  # also after a failed start: no worker is started again from here on
            await self._stop_workers()
            for keeper in keepers:
                keeper.cancel()
            await asyncio.gather(*keepers, return_exceptions=True)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            shutil.rmtree(self.rundir, ignore_errors=True)
        return 1 if self._failed is not None else 0

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        if self._stop.is_set():
            logger.info("workers.stop %s again: the workers stop now", sig.name)
            self._forward(signal.SIGTERM)  # a second signal: each worker stops without waiting for its drain
            return
        logger.info("workers.stop requested by %s: every worker drains", sig.name)
        self._stop.set()
        self._changed.set()

    def _forward(self, sig: signal.Signals) -> None:
        for slot in self.slots:
            if slot.proc is not None and slot.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.proc.send_signal(sig)
        if sig is signal.SIGHUP:
            logger.info("workers.reload SIGHUP forwarded to %d workers", self.count)

    async def _stop_workers(self) -> None:
        self._forward(signal.SIGTERM)
        running = [s.proc for s in self.slots if s.proc is not None and s.proc.returncode is None]
        if not running:
            return
        _, late = await asyncio.wait([asyncio.ensure_future(p.wait()) for p in running], timeout=self.stop_timeout)
        if late:
            logger.error("workers.stop %d worker(s) still running after %.0f s: killed", len(late), self.stop_timeout)
            for proc in running:
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
            await asyncio.gather(*(p.wait() for p in running))

    # -- one worker -----------------------------------------------------------------------------
    async def _keep(self, slot: _Slot) -> None:
        """Run the worker of ``slot``, and again each time it dies, until the parent stops."""
        while not self._stop.is_set():
            proc = await self._spawn(slot)
            hung = await self._hung_at_start(slot, proc)
            watchdog = asyncio.create_task(self._watch(slot, proc), name=f"govgate worker {slot.index} watchdog")
            try:
                code = await proc.wait()
            finally:
                watchdog.cancel()
            ran = time.monotonic() - slot.started
            self._mark_dead(proc.pid)
            if self._stop.is_set():
                return
            if not self._serving and not slot.ready:
                self._failed = (f"worker {slot.index + 1} did not listen within {self.start_timeout:.0f} s (it was "
                                "asked for its threads' stacks: see above)" if hung else
                                f"worker {slot.index + 1} exited with {describe_exit(code)} before it listened")
                self._changed.set()
                return
            slot.failures = failures_after(slot.failures, ran, hung=hung)
            delay = restart_delay(slot.failures)
            how = f"killed: did not listen within {self.start_timeout:.0f} s" if hung else describe_exit(code)
            logger.error("worker.exit worker=%d pid=%d %s after %.1f s: restarting in %.1f s",
                         slot.index, proc.pid, how, ran, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            slot.restarts += 1

    async def _watch(self, slot: _Slot, proc: asyncio.subprocess.Process) -> None:
        """While the worker listens: when its heartbeat goes stale (``STALL_SECONDS``: a stopped process, a wedged
        event loop), ask for its stacks and kill it; ``_keep`` restarts it. Until then the kernel would go on
        handing it its share of new connections, which nobody answers."""
        path = heartbeat_file(self.rundir, slot.index)
        while proc.returncode is None:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            if not slot.ready or self._stop.is_set():
                continue
            if not await asyncio.to_thread(_stalled, path, time.monotonic()):
                continue
            logger.error("worker.stalled worker=%d pid=%d no sign of life from its event loop for %.0f s: its stacks "
                         "follow, then it is killed and restarted", slot.index, proc.pid, STALL_SECONDS)
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGUSR1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(asyncio.ensure_future(proc.wait())), STACK_DUMP_WAIT)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            return

    async def _hung_at_start(self, slot: _Slot, proc: asyncio.subprocess.Process) -> bool:
        """Wait until the worker listens or exits; past ``start_timeout`` ask for its stacks, kill it, say True.

        Its ready pipe closing without a line is not listening: the wait goes on until it exits or time is up."""
        exited = asyncio.ensure_future(proc.wait())
        deadline = time.monotonic() + self.start_timeout
        try:
            while not slot.ready and not exited.done():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                waiters: list[asyncio.Future[Any]] = [exited]
                if slot.ready_task is not None and not slot.ready_task.done():
                    waiters.append(slot.ready_task)
                await asyncio.wait(waiters, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            if slot.ready or exited.done():
                return False
            logger.error("worker.hung worker=%d pid=%d did not listen within %.0f s: its stacks follow, then it is "
                         "killed", slot.index, proc.pid, self.start_timeout)
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGUSR1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(exited), STACK_DUMP_WAIT)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            return True
        finally:
            if not exited.done():
                exited.cancel()

    async def _spawn(self, slot: _Slot) -> asyncio.subprocess.Process:
        read_fd, write_fd = os.pipe()
        role = WorkerRole(index=slot.index, count=self.count, restarts=slot.restarts, status_file=self.status_file,
                          ready_fd=write_fd, parent_pid=os.getpid(), ports=self.ports)
        env = {**{k: v for k, v in os.environ.items() if k not in ENV_NAMES}, **role.env(),
               "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir)}
        try:
            proc = await asyncio.create_subprocess_exec(*self.command, env=env, pass_fds=(write_fd,),
                                                        process_group=0)  # Ctrl-C reaches the parent only
        finally:
            os.close(write_fd)
        slot.proc, slot.started, slot.ready = proc, time.monotonic(), False
        with contextlib.suppress(OSError):
            heartbeat_file(self.rundir, slot.index).unlink()  # the last worker's: this one has none until it listens
        self._write_status()
        if slot.restarts:
            logger.info("worker.start worker=%d pid=%d restart=%d", slot.index, proc.pid, slot.restarts)
        slot.ready_task = asyncio.create_task(self._await_ready(slot, proc, read_fd),
                                              name=f"govgate worker {slot.index} ready")
        return proc

    async def _await_ready(self, slot: _Slot, proc: asyncio.subprocess.Process, read_fd: int) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        pipe = os.fdopen(read_fd, "rb", buffering=0)
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
        try:
            line = await reader.readline()
        finally:
            transport.close()
        if not line or slot.proc is not proc:
            return
        with contextlib.suppress(ValueError):
            slot.urls = [str(u) for u in json.loads(line)]
        slot.ready = True
        self._changed.set()

    def _mark_dead(self, pid: int) -> None:
        from prometheus_client import multiprocess

        with contextlib.suppress(OSError):
            multiprocess.mark_process_dead(pid, str(self.metrics_dir))  # type: ignore[no-untyped-call]
        self._write_status()

    def _write_status(self) -> None:
        pids = [s.proc.pid if s.proc is not None and s.proc.returncode is None else None for s in self.slots]
        try:
            write_status(self.status_file, pids)
        except OSError as exc:
            logger.error("workers.status.failed file=%s error=%s", self.status_file, exc)


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"
