"""GovGate inside a stock mitmproxy: ``mitmdump -s addons/govgate.py --set govgate_policy=policy.yaml``.

For debugging with mitmweb, or running GovGate beside addons of one's own (``docs/operations.md``, "Inside a
stock mitmproxy"). One addon, ``GovGate``:

- ``load`` declares the ``govgate_policy`` option;
- ``configure`` loads that policy as ``govgate run`` does (refusing an invalid one with an ``OptionsError`` that
  lists every problem), sets the options that follow from it (listen address and upstream, the Host kept,
  lazy upstream connections, TLS 1.2+) and puts GovGate's addons after itself, in their one order
  (``govgate.addons.chain``); the policy cannot be swapped for another while running (restart instead; edits to
  the same file are reloaded as usual);
- ``done`` closes the runtime last, flushing the audit log.

Until a policy is loaded every request is answered 503 (fail closed): a proxy that carries the script without
its policy must not pass requests unjudged.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mitmproxy import addonmanager, ctx, exceptions, http
from mitmproxy.addons.proxyserver import Proxyserver

from govgate.addons.chain import gateway_addons
from govgate.addons.context import respond
from govgate.core.policy.model import Policy
from govgate.errors import GovGateError, PolicyError
from govgate.live_runtime import LiveRuntime
from govgate.pages.refusal import unavailable
from govgate.repeated import REPEATED
from govgate.serve import changed_options, mitm_options, static_options

logger = logging.getLogger(__name__)

OPTION = "govgate_policy"


class _CloseRuntime:
    """The last of GovGate's addons: its ``done`` closes the runtime after every other addon's ``done``."""

    def __init__(self, runtime: LiveRuntime) -> None:
        self.runtime = runtime

    async def done(self) -> None:
        REPEATED.flush()
        await self.runtime.close()


class GovGate:
    def __init__(self) -> None:
        self.runtime: LiveRuntime | None = None
        self.policy_path: Path | None = None
        self.addons: list[object] = []  # mitmproxy runs these after this addon's own hooks, in order
        self._keep: object = None

    def load(self, loader: addonmanager.Loader) -> None:
        loader.add_option(OPTION, str, "", "GovGate's policy.yaml: its gateway, rules, accounts and audit log.")

    def configure(self, updated: set[str]) -> None:
        if OPTION not in updated:
            return
        value: str = ctx.options.govgate_policy
        if not value:
            if self.runtime is not None:
                raise exceptions.OptionsError(f"{OPTION}: cannot be unset while running; restart instead")
            logger.warning("govgate: no policy (--set %s=policy.yaml): every request is answered 503", OPTION)
            return
        path = Path(value).expanduser().resolve()
        if self.runtime is not None:
            if path != self.policy_path:
                raise exceptions.OptionsError(f"{OPTION}: cannot change while running ({self.policy_path}); "
                                              "restart with the other policy")
            return
        try:
            runtime = LiveRuntime.load(path)
        except PolicyError as exc:
            raise exceptions.OptionsError(f"{OPTION}: {path}: the policy is invalid:\n"
                                          + "\n".join(str(p) for p in exc.problems)) from None
        except GovGateError as exc:
            raise exceptions.OptionsError(f"{OPTION}: {path}: {exc}") from None
        self.runtime, self.policy_path = runtime, path
        if runtime.policy.gateway.insecure:
            logger.warning("govgate: insecure: true — serving PLAIN HTTP without TLS; for local trials only")
        govgate = gateway_addons(runtime, self._apply_reload, replace_mitmproxy_tls=True)
        self.addons = [govgate.client_tls, *govgate.chain, _CloseRuntime(runtime)]
        proxyserver: Proxyserver | None = ctx.master.addons.get("proxyserver")
        if proxyserver is not None:
            govgate.proxy_protocol.attach(proxyserver)  # before the policy's listener starts (in `running`)
        self._keep = govgate.proxy_protocol  # mitmproxy holds its signal's receivers weakly
        options = {**static_options(), **mitm_options(runtime.policy)}
        if "block_global" in ctx.options:
            # mitmproxy's ``block`` addon would refuse every public address, even in reverse mode; GovGate judges
            # addresses itself (``govgate run`` does not load ``block`` at all).
            options["block_global"] = False
        ctx.options.update(**options)

    async def running(self) -> None:
        # mitmproxy brings its listeners up before it loads scripts, on its own options (port 8080): now that the
        # policy's listen address and upstream are set, bring those up instead, as mitmproxy does when ``mode``
        # changes while it runs.
        proxyserver: Proxyserver | None = ctx.master.addons.get("proxyserver")
        if self.runtime is not None and proxyserver is not None:
            await proxyserver.setup_servers()

    @staticmethod
    def _apply_reload(before: Policy, after: Policy) -> None:
        changed = changed_options(before, after)
        if changed:
            logger.info("policy.reload applying options=%s", ",".join(sorted(changed)))
            ctx.options.update(**changed)

    def request(self, flow: http.HTTPFlow) -> None:
        if self.runtime is None and flow.response is None:
            respond(flow, unavailable("-", "policy", as_json=False))
