"""The gateway's entry point: a mitmproxy master with only the built-in addons a reverse proxy needs,
and GovGate's addons in their order (``govgate.addons.chain``).

Loading only what we need (instead of mitmdump's ~30 default addons) keeps event dispatch cheap.
Not loading mitmproxy's ``block`` addon means connections from public addresses are served (its
``block_global`` default would kill them, even in reverse mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import resource
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mitmproxy import options, optmanager
from mitmproxy.addons import core, errorcheck, next_layer, proxyserver, tlsconfig
from mitmproxy.master import Master
from mitmproxy.proxy.mode_servers import AsyncioServerInstance

from govgate.addons.chain import gateway_addons
from govgate.core import html_scan
from govgate.core.policy.model import Policy
from govgate.dispatch import HookTable, answer_hooks_inline
from govgate.live_runtime import LiveRuntime
from govgate.message_check import install as install_message_check
from govgate.repeated import REPEATED
from govgate.runtime import Runtime
from govgate.tls_server import GROUPS, TLS12_CIPHERS, TLS13_CIPHERS
from govgate.workers import WorkerRole, current_worker, heartbeat, listen_port, report_ready

logger = logging.getLogger(__name__)


_IMMUTABLE = frozenset({str, int, float, bool, bytes, type(None)})


class GatewayOptions(options.Options):
    """mitmproxy's ``Options``, reading an option whose value is immutable without copying it.

    ``OptManager.__getattr__`` returns a ``copy.deepcopy`` of the value at every read, and mitmproxy's HTTP layers
    read options (``body_size_limit``, ``stream_large_bodies``, ``validate_inbound_headers``, ...) about 13 times per
    request. A deep copy of a ``str``, number, ``bool`` or ``None`` is the value itself, so for those the copy is
    skipped; any other value (a list, a dict) is still copied as before."""

    def __getattr__(self, attr: str) -> Any:
        option = self.__dict__.get("_options", {}).get(attr)
        if option is None:
            raise AttributeError(f"No such option: {attr}")
        value = option.value
        if value is optmanager.unset:
            value = option._default
        if type(value) in _IMMUTABLE:
            return value
        return option.current()


def mitm_options(policy: Policy) -> dict[str, Any]:
    """The options that follow from the policy; re-applied after a reload when they change. TLS towards the
    browser is not among them: ``govgate/addons/tls.py`` gives every connection the policy's own context."""
    gw = policy.gateway
    host = gw.listen.host
    port = listen_port("listen", gw.listen.port)  # a worker of `--workers N`: the port its parent reserved
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return {"mode": [f"reverse:{gw.upstream}@{listen}"]}


def changed_options(before: Policy, after: Policy) -> dict[str, Any]:
    """The options a reload from ``before`` to ``after`` changes."""
    old, new = mitm_options(before), mitm_options(after)
    return {k: v for k, v in new.items() if old.get(k) != v}


def tls_settings(policy: Policy) -> dict[str, str | bool | None]:
    """Art. 29: the TLS settings the gateway serves with, for its ``gateway.start`` audit record."""
    gw = policy.gateway
    if gw.insecure:
        return {"insecure": True, "min_version": None, "ciphers_tls12": None, "groups": None,
                "client_certificates": False, "client_ca": None, "certificate": None}
    return {"insecure": False, "min_version": "TLS1.2", "ciphers_tls12": TLS12_CIPHERS, "ciphers_tls13": TLS13_CIPHERS,
            "groups": GROUPS, "client_certificates": bool(gw.request_client_cert),
            "client_ca": str(gw.client_ca) if gw.client_ca else None,
            "certificate": str(gw.tls_cert) if gw.tls_cert else None}


def static_options(confdir: Path | None = None) -> dict[str, Any]:
    """The options every GovGate proxy runs with; ``confdir`` (mitmproxy's own folder) when given."""
    return {
        **({"confdir": str(confdir)} if confdir is not None else {}),
        "keep_host_header": True,  # rules and link classification need the Host the client sent
        "connection_strategy": "lazy",  # pages the gate answers never open an upstream connection
        "tls_version_client_min": "TLS1_2",  # Art. 29: TLS 1.2+ only (govgate/addons/tls.py sets the whole profile)
        "http3": False,
        "rawtcp": False,
        "body_size_limit": "64m",
        "ssl_insecure": False,
    }


class StartupReport:
    def __init__(self, runtime: Runtime, ready: Callable[[list[str]], None] | None) -> None:
        self.runtime = runtime
        self.ready = ready
        self._heartbeat: asyncio.Task[None] | None = None

    async def done(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat

    async def running(self) -> None:
        from mitmproxy import ctx

        ps = ctx.master.addons.get("proxyserver")
        policy = self.runtime.policy
        scheme = "http" if policy.gateway.insecure else "https"
        urls = []
        for addr in ps.listen_addrs():
            host = addr[0]
            host = f"[{host}]" if ":" in host else host
            urls.append(f"{scheme}://{host}:{addr[1]}/")
        if policy.gateway.insecure:
            print("govgate: WARNING: insecure: true — serving PLAIN HTTP without TLS. For local trials only; "
                  "Art. 29 requires secure connections in production.", file=sys.stderr, flush=True)
        self.runtime.record_start(urls, tls_settings(policy))
        worker = current_worker()
        for url in urls:
            if worker is None:
                print(f"govgate: listening on {url} → {policy.gateway.upstream}", flush=True)
            else:  # the parent says "listening on" once every worker does
                print(f"govgate: {worker.name} (pid {os.getpid()}) serving {url}", flush=True)
        if worker is not None:
            self._heartbeat = asyncio.create_task(heartbeat(worker), name="govgate heartbeat")  # the loop is alive
            report_ready(worker, urls)
        if self.ready is not None:
            self.ready(urls)
        freeze_startup_objects()


def freeze_startup_objects() -> None:
    """Leave everything alive once the gateway listens (modules, addons, policy, options: about 100,000 objects)
    out of the garbage collector's full collections from now on (``gc.freeze``).

    The collector's oldest generation is scanned whole every few seconds under load; on the running gateway about
    two thirds of what it scanned was this start-up state, which never becomes garbage (docs/performance.md).
    Frozen objects are still freed when no reference is left; only a reference cycle among them would outlive
    its last use, and the start-up state is kept for the whole run anyway."""
    gc.collect()  # start-up garbage is freed, not frozen
    gc.freeze()


class ReusePort:
    """In a worker of ``govgate run --workers N``: the proxy's TCP listeners bind with ``SO_REUSEPORT``, as their
    sibling workers' do, so that the kernel shares the connections between them (``govgate/workers.py``).

    mitmproxy 12 binds in ``AsyncioServerInstance.listen`` (``mitmproxy/proxy/mode_servers.py``) with a plain
    ``asyncio.start_server``; each instance's ``listen`` is replaced before it starts, as
    ``govgate/addons/proxy_protocol.py`` does with ``handle_stream`` (``Proxyserver.servers.changed``)."""

    def __init__(self, role: WorkerRole) -> None:
        self.role = role
        self._servers: Any = None
        self._done: set[int] = set()

    def attach(self, server: proxyserver.Proxyserver) -> None:
        self._servers = server.servers
        server.servers.changed.connect(self._changed)  # held weakly by mitmproxy: serve() keeps self
        self._changed()

    def _changed(self) -> None:
        for instance in self._servers or ():
            if instance.is_running or id(instance) in self._done or not isinstance(instance, AsyncioServerInstance):
                continue
            self._done.add(id(instance))
            instance.listen = functools.partial(self._listen, instance)  # type: ignore[method-assign]

    @staticmethod
    async def _listen(instance: AsyncioServerInstance[Any], host: str, port: int) -> list[Any]:
        if instance.mode.transport_protocol != "tcp":
            raise OSError(f"{instance.mode.description}: only TCP listeners can be shared by several workers")
        # `instance.handle_stream` is looked up now: the PROXY protocol wrapper (if any) is in place.
        return [await asyncio.start_server(instance.handle_stream, host, port, reuse_port=True)]


def raise_open_file_limit() -> None:
    """Every connection holds a descriptor: take the hard limit, not the usual soft 1,024, so that a flood
    of idle connections (which mitmproxy closes only after ``tcp_timeout``) takes much more to exhaust it."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY:
            hard = 1 << 20
        if soft != resource.RLIM_INFINITY and soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            logger.info("open file limit raised from %d to %d", soft, hard)
    except (ValueError, OSError) as exc:
        logger.warning("open file limit left as it is: %s", exc)


async def serve(runtime: LiveRuntime, *, confdir: Path,
                ready: Callable[[list[str]], None] | None = None) -> None:
    """Run the gateway until SIGTERM/SIGINT; flushes the audit log on the way out."""
    raise_open_file_limit()
    if not html_scan.JUMPS_IN_C:
        # The same links are found and warned (Art. 15), by the scanner's patterns alone: about 4x slower on a page.
        logger.warning("outbound.scanner_slow: govgate._jumps is not built (no C compiler at install); "
                       "pages are scanned by the patterns alone")
    opts = GatewayOptions()
    master = Master(opts, with_termlog=False)
    master.addons = HookTable(master)  # each hook's handlers looked up once (govgate/dispatch.py)
    answer_hooks_inline()  # and hooks answered where the layers raise them, without a task each (same file)
    install_message_check()  # mitmproxy's check of each message's fields, without exceptions (govgate/message_check.py)

    def on_reload(before: Policy, after: Policy) -> None:
        changed = changed_options(before, after)
        if changed:
            logger.info("policy.reload applying options=%s", ",".join(sorted(changed)))
            opts.update(**changed)

    govgate = gateway_addons(runtime, on_reload)
    server = proxyserver.Proxyserver()
    govgate.proxy_protocol.attach(server)  # before it listens: the PROXY header precedes everything else
    worker = current_worker()
    reuse = ReusePort(worker) if worker is not None else None
    if reuse is not None:
        reuse.attach(server)
    master.addons.add(core.Core(), server, next_layer.NextLayer(),
                      govgate.client_tls,  # before tlsconfig: browsers get the gateway's own TLS context (Art. 29)
                      tlsconfig.TlsConfig(), errorcheck.ErrorCheck(repeat_errors_on_stderr=True))
    opts.update(**static_options(confdir), **mitm_options(runtime.policy))
    master.addons.add(*govgate.chain, StartupReport(runtime, ready))
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []
    stopped_by: list[str] = []

    async def drain_then_stop() -> None:
        try:
            await govgate.limits.drain(runtime.policy.gateway.drain_timeout.total_seconds())
        finally:
            master.shutdown()

    def on_signal(sig: signal.Signals) -> None:
        if stopping:  # a second signal: stop now
            master.shutdown()
            return
        stopped_by.append(sig.name)
        logger.info("gateway.stop requested by %s: draining", sig.name)
        stopping.append(loop.create_task(drain_then_stop(), name="govgate drain"))

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal, sig)
    try:
        await master.run()
    finally:
        REPEATED.flush()
        # Art. 20: the `gateway.stop` record is written and flushed before the process exits.
        await runtime.close(stopped_by[0] if stopped_by else "shutdown")
