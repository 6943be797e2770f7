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

from addons.context import RequestContextAddon
from addons.gate import Gate
from addons.login_pages import GatePages
from addons.metrics import MetricsEndpoint
from addons.outbound_links import OutboundLinks
from addons.policy_watch import PolicyWatch
from addons.proxy_errors import ProxyErrors
from addons.security_headers import SecurityHeaders
from govgate.core.policy.model import Policy
from govgate.live_runtime import LiveRuntime

logger = logging.getLogger(__name__)

# Only the options that follow from the policy; re-applied after a reload when they change.
POLICY_OPTIONS = ("mode", "certs", "request_client_cert")


def mitm_options(policy: Policy) -> dict[str, Any]:
    gw = policy.gateway
    host = gw.listen.host
    listen = f"[{host}]:{gw.listen.port}" if ":" in host else f"{host}:{gw.listen.port}"
    return {
        "mode": [f"reverse:{gw.upstream}@{listen}"],
        "certs": [f"*={gw.tls_cert}"] if gw.tls_cert is not None else [],
        "request_client_cert": bool(gw.request_client_cert and not gw.insecure),
    }


# Art. 29 (第二十九条, secure connections): for TLS 1.2, only forward-secret AEAD suites (Mozilla's
# "intermediate" configuration); mitmproxy's default list also offers CBC, SHA-1, static-RSA and 3DES
# suites for old clients. TLS 1.3 suites are all AEAD and forward secret.
CLIENT_CIPHERS = ":".join((
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-GCM-SHA384", "DHE-RSA-CHACHA20-POLY1305",
))


def tls_settings(policy: Policy) -> dict[str, str | bool | None]:
    """Art. 29: the TLS settings the gateway serves with, for its ``gateway.start`` audit record."""
    gw = policy.gateway
    if gw.insecure:
        return {"insecure": True, "min_version": None, "ciphers_tls12": None, "client_certificates": False,
                "client_ca": None, "certificate": None}
    return {"insecure": False, "min_version": "TLS1.2", "ciphers_tls12": CLIENT_CIPHERS,
            "client_certificates": bool(gw.request_client_cert),
            "client_ca": str(gw.client_ca) if gw.client_ca else None,
            "certificate": str(gw.tls_cert) if gw.tls_cert else None}


def static_options(confdir: Path) -> dict[str, Any]:
    return {
        "confdir": str(confdir),
        "keep_host_header": True,  # rules and link classification need the Host the client sent
        "connection_strategy": "lazy",  # pages the gate answers never open an upstream connection
        "tls_version_client_min": "TLS1_2",  # Art. 29: TLS 1.2+ only
        "ciphers_client": CLIENT_CIPHERS,
        "http3": False,
        "rawtcp": False,
        "body_size_limit": "64m",
        "ssl_insecure": False,
    }


class StartupReport:
    def __init__(self, runtime: LiveRuntime, ready: Callable[[list[str]], None] | None) -> None:
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
        self.runtime.record_start(urls, tls_settings(policy))
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
    master.addons.add(core.Core(), proxyserver.Proxyserver(), next_layer.NextLayer(), tlsconfig.TlsConfig(),
                      errorcheck.ErrorCheck(repeat_errors_on_stderr=True))
    opts.update(**static_options(confdir), **mitm_options(runtime.policy))

    def on_reload(before: Policy, after: Policy) -> None:
        old, new = mitm_options(before), mitm_options(after)
        changed = {k: v for k, v in new.items() if old.get(k) != v}
        if changed:
            logger.info("policy.reload applying options=%s", ",".join(sorted(changed)))
            opts.update(**changed)

    master.addons.add(
        RequestContextAddon(runtime),
        GatePages(runtime),
        Gate(runtime),
        OutboundLinks(runtime),
        SecurityHeaders(runtime),
        ProxyErrors(runtime),
        PolicyWatch(runtime, on_reload),
        MetricsEndpoint(runtime),
        StartupReport(runtime, ready),
    )
    loop = asyncio.get_running_loop()
    stopped_by: list[str] = []

    def stop(sig: signal.Signals) -> None:
        stopped_by.append(sig.name)
        master.shutdown()

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop, sig)
    try:
        await master.run()
    finally:
        # Art. 20: the `gateway.stop` record is written and flushed before the process exits.
        await runtime.close(stopped_by[0] if stopped_by else "shutdown")
