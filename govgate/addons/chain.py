"""GovGate's addons and the one order they run in, for ``govgate run`` and for a stock mitmproxy alike.

``govgate.serve`` (the gateway's own master) and ``govgate.addons.standalone`` (``mitmdump -s addons/govgate.py``)
both take their addons from ``gateway_addons``, so the order is written once:

1. ``context`` — request id, client address, country, header hygiene; 400s; plain HTTP → HTTPS;
2. ``enrolment``, ``login_pages`` — the gate's own pages under ``gateway.prefix``;
3. ``gate`` — the access decision for everything else, identity headers;
4. ``outbound_links`` — Art. 15 on the way out: links and redirects to non-government sites;
5. ``security_headers`` — HSTS, the portal's attempts to set the gate's cookies dropped, SNI upstream;
6. ``proxy_errors`` — the gate's own page for errors mitmproxy answers itself;
7. ``upstream_timeout`` — after the gate: its ``request`` hook sees forwarded flows only;
8. ``connections`` — last of the request/response hooks: its ``response`` hook marks a connection's final
   answer after every other change;
9. ``policy_watch``, ``metrics``, ``https_redirect`` — the reload loop and two listeners; ``metrics`` also times
   each answer in its ``response`` hook, after every other addon has had its say;
10. ``admin_channel`` — no request hooks: the local socket ``govgate account list`` asks for locks kept in memory.

``client_tls`` is apart: it must hand browsers the gateway's TLS context before mitmproxy's ``tlsconfig`` makes
one of its own (``govgate run`` registers it before ``tlsconfig``; under mitmdump it replaces ``tlsconfig``'s).
``proxy_protocol`` is apart too: it has no hooks, and is attached to mitmproxy's ``proxyserver`` before the
listeners start (``ProxyProtocol.attach``), as it must read a connection's first bytes before mitmproxy does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from govgate.addons.admin_channel import AdminChannel
from govgate.addons.connections import ConnectionLimits
from govgate.addons.context import RequestContextAddon
from govgate.addons.enrolment import Enrolment
from govgate.addons.gate import Gate
from govgate.addons.https_redirect import HttpsRedirect
from govgate.addons.login_pages import GatePages
from govgate.addons.metrics import MetricsEndpoint
from govgate.addons.outbound_links import OutboundLinks
from govgate.addons.policy_watch import PolicyWatch
from govgate.addons.proxy_errors import ProxyErrors
from govgate.addons.proxy_protocol import ProxyProtocol
from govgate.addons.security_headers import SecurityHeaders
from govgate.addons.tls import ClientTls
from govgate.addons.upstream_timeout import UpstreamTimeout
from govgate.core.policy.model import Policy
from govgate.runtime import Runtime


@dataclass(frozen=True, slots=True)
class GatewayAddons:
    client_tls: ClientTls
    chain: tuple[object, ...]  # in the order their hooks run
    limits: ConnectionLimits  # one of ``chain``: a graceful stop drains connections through it
    proxy_protocol: ProxyProtocol  # attached to mitmproxy's proxyserver before it listens (gateway.proxy_protocol)


def gateway_addons(runtime: Runtime, on_reload: Callable[[Policy, Policy], None], *,
                   replace_mitmproxy_tls: bool = False) -> GatewayAddons:
    """GovGate's addons on ``runtime``; ``on_reload(before, after)`` follows each good policy reload.
    ``replace_mitmproxy_tls``: ``client_tls`` runs after mitmproxy's ``tlsconfig`` and replaces its context."""
    limits = ConnectionLimits(runtime)
    chain = (
        RequestContextAddon(runtime),
        Enrolment(runtime),  # {prefix}/enroll, before the other pages under the prefix
        GatePages(runtime),
        Gate(runtime),
        OutboundLinks(runtime),
        SecurityHeaders(runtime),
        ProxyErrors(runtime),
        UpstreamTimeout(runtime),
        limits,
        PolicyWatch(runtime, on_reload),
        MetricsEndpoint(runtime),
        HttpsRedirect(runtime),
        AdminChannel(runtime),
    )
    return GatewayAddons(client_tls=ClientTls(runtime, replace_mitmproxy_tls=replace_mitmproxy_tls), chain=chain,
                         limits=limits, proxy_protocol=ProxyProtocol(runtime))
