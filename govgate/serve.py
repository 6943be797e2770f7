"""The gateway's entry point: a mitmproxy master with only the built-in addons a reverse proxy needs,
and GovGate's addons in order (context → pages → gate → outbound links → security headers).

Loading only what we need (instead of mitmdump's ~30 default addons) keeps event dispatch cheap.
Not loading mitmproxy's ``block`` addon means connections from public addresses are served (its
``block_global`` default would kill them, even in reverse mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mitmproxy import options
from mitmproxy.addons import core, errorcheck, next_layer, proxyserver, tlsconfig
from mitmproxy.master import Master

from govgate.addons.connections import ConnectionLimits
from govgate.addons.context import RequestContextAddon
from govgate.addons.gate import Gate
from govgate.addons.https_redirect import HttpsRedirect
from govgate.addons.login_pages import GatePages
from govgate.addons.metrics import MetricsEndpoint
from govgate.addons.outbound_links import OutboundLinks
from govgate.addons.policy_watch import PolicyWatch
from govgate.addons.proxy_errors import ProxyErrors
from govgate.addons.security_headers import SecurityHeaders
from govgate.addons.tls import ClientTls
from govgate.addons.upstream_timeout import UpstreamTimeout
from govgate.core.policy.model import Policy
from govgate.live_runtime import LiveRuntime
from govgate.repeated import REPEATED
from govgate.runtime import Runtime

logger = logging.getLogger(__name__)


def mitm_options(policy: Policy) -> dict[str, Any]:
    """The options that follow from the policy; re-applied after a reload when they change. TLS towards the
    browser is not among them: ``govgate/addons/tls.py`` gives every connection the policy's own context."""
    gw = policy.gateway
    host = gw.listen.host
    listen = f"[{host}]:{gw.listen.port}" if ":" in host else f"{host}:{gw.listen.port}"
    return {"mode": [f"reverse:{gw.upstream}@{listen}"]}


def static_options(confdir: Path) -> dict[str, Any]:
    return {
        "confdir": str(confdir),
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
        for url in urls:
            print(f"govgate: listening on {url} → {policy.gateway.upstream}", flush=True)
        if self.ready is not None:
            self.ready(urls)


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
    opts = options.Options()
    master = Master(opts, with_termlog=False)
    master.addons.add(core.Core(), proxyserver.Proxyserver(), next_layer.NextLayer(),
                      ClientTls(runtime),  # before tlsconfig: browsers get the gateway's own TLS context (Art. 29)
                      tlsconfig.TlsConfig(), errorcheck.ErrorCheck(repeat_errors_on_stderr=True))
    opts.update(**static_options(confdir), **mitm_options(runtime.policy))

    def on_reload(before: Policy, after: Policy) -> None:
        old, new = mitm_options(before), mitm_options(after)
        changed = {k: v for k, v in new.items() if old.get(k) != v}
        if changed:
            logger.info("policy.reload applying options=%s", ",".join(sorted(changed)))
            opts.update(**changed)

    limits = ConnectionLimits(runtime)
    master.addons.add(
        RequestContextAddon(runtime),
        GatePages(runtime),
        Gate(runtime),
        OutboundLinks(runtime),
        SecurityHeaders(runtime),
        ProxyErrors(runtime),
        UpstreamTimeout(runtime),  # after the gate: its `request` hook sees forwarded flows only
        limits,  # last: its `response` hook marks the final answer of a connection after every other change
        PolicyWatch(runtime, on_reload),
        MetricsEndpoint(runtime),
        HttpsRedirect(runtime),
        StartupReport(runtime, ready),
    )
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []

    async def drain_then_stop() -> None:
        try:
            await limits.drain(runtime.policy.gateway.drain_timeout.total_seconds())
        finally:
            master.shutdown()

    def on_signal() -> None:
        if stopping:  # a second signal: stop now
            master.shutdown()
            return
        logger.info("gateway.stop requested: draining")
        stopping.append(loop.create_task(drain_then_stop(), name="govgate drain"))

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal)
    try:
        await master.run()
    finally:
        REPEATED.flush()
        await runtime.close()
