"""``{prefix}/enroll``: a staff member enrols this browser as a device (Art. 19, Art. 30).

For machines where a certificate cannot be installed. Only a logged-in staff member (a valid session) on an
allowed network (at home, inside a staff rule's networks: ``on_allowed_network``) may enrol; the browser gets a
long-lived ``__Host-``/``Secure``/``HttpOnly`` device cookie carrying a token of 256 random bits signed
with the gateway key (``govgate.core.device_cookie``), and the device
registry (``devices_file``) a pending entry holding only the token's SHA-256. The browser is a device once an
administrator runs ``govgate device approve ID``; approved devices expire and can be revoked like any other.
Registered before the gate's other pages (``login_pages``), which then step aside.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Awaitable
from datetime import datetime

from mitmproxy import http

from govgate.addons.context import RequestContext, context_of, gate_cookie, redirect, request_event, respond
from govgate.addons.login_pages import csrf_browser_id, read_form
from govgate.cookies import GateCookie, set_cookie
from govgate.core import device_cookie
from govgate.core.audit_event import AuditDecision
from govgate.core.csrf import csrf_token, csrf_valid
from govgate.core.decide import on_allowed_network
from govgate.core.device_registry import DeviceKind, DeviceRegistry, DeviceState, RegisteredDevice, token_digest
from govgate.errors import DeviceError, StoreUnavailable
from govgate.pages import enrol as pages
from govgate.pages.refusal import bad_request, forbidden, method_not_allowed, unavailable
from govgate.runtime import Runtime

logger = logging.getLogger(__name__)

ARTICLE = "Art. 30"
DEVICE_COOKIE_DAYS = 400  # browsers keep a cookie at most 400 days (RFC 6265bis); the approval's own expiry rules
_NOT_IN_ID = re.compile(r"[^A-Za-z0-9._-]")


class Enrolment:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        """Only ``{prefix}/enroll`` is ours; for it the rest is returned as a coroutine (mitmproxy awaits what a hook
        returns): any other request passes without one (govgate/dispatch.py answers its hook without a task)."""
        if flow.response or flow.error or not flow.live:
            return None
        ctx = context_of(flow)
        if ctx is None or flow.request.path.split("?", 1)[0] != ctx.snapshot.policy.gateway.prefix + "/enroll":
            return None
        method = flow.request.method
        if method not in ("GET", "POST"):
            respond(flow, method_not_allowed())
            return None
        return self._enroll_page(flow, ctx, method)

    async def _enroll_page(self, flow: http.HTTPFlow, ctx: RequestContext, method: str) -> None:
        try:
            account = await self._staff_member(flow, ctx)
            if account is None:
                return
            if method == "GET":
                self._form(flow, ctx, account)
            else:
                await self._enrol(flow, ctx, account)
        except StoreUnavailable:
            respond(flow, unavailable(ctx.request_id, "store", as_json=ctx.as_json))
        except Exception:
            logger.exception("enrol.error request_id=%s", ctx.request_id)
            respond(flow, forbidden("denied", ctx.request_id, as_json=ctx.as_json))

    async def _staff_member(self, flow: http.HTTPFlow, ctx: RequestContext) -> str | None:
        """The account of a valid session on an allowed network; otherwise answers (login, or 403) and None."""
        snapshot = ctx.snapshot
        policy = snapshot.policy
        now = self.runtime.now()
        session_id = gate_cookie(flow, ctx, GateCookie.SESSION)
        lookup = await self.runtime.store.touch_session(session_id, now, policy.session) if session_id else None
        session = lookup.session if lookup is not None else None
        account = snapshot.accounts.get(session.account) if session is not None else None
        if session is None or account is None or account.disabled or account.is_expired(now.date()) or (
                account.session_revoked(session.created)):
            redirect(flow, f"{policy.gateway.prefix}/login?next={policy.gateway.prefix}/enroll")
            return None
        locked_until = lookup.account_locked_until if lookup is not None else None
        if locked_until is not None and locked_until > now:
            # Art. 30 (第三十条, 限制登录失败次数): a locked account does nothing through the gate, enrolling included.
            self._audit(flow, ctx, "device.enrol_refused", AuditDecision.REFUSE, account.name, None, reason="locked")
            respond(flow, forbidden("locked", ctx.request_id, as_json=ctx.as_json))
            return None
        # Art. 19: a device may only be added from where staff may work without one.
        if not on_allowed_network(ctx.client, ctx.country, snapshot.compiled):
            self._audit(flow, ctx, "device.enrol_refused", AuditDecision.REFUSE, account.name, None, reason="network")
            respond(flow, forbidden("network", ctx.request_id, as_json=ctx.as_json))
            return None
        return account.name

    def _known(self, flow: http.HTTPFlow, ctx: RequestContext, registry: DeviceRegistry) -> RegisteredDevice | None:
        cookie = gate_cookie(flow, ctx, GateCookie.DEVICE)
        presented = device_cookie.token_of(self.runtime.keys, cookie) if cookie else None
        if presented is None or not presented.signed:
            return None
        digest = token_digest(presented.token)
        return next((d for d in registry if d.token_sha256 is not None
                     and secrets.compare_digest(d.token_sha256, digest) and d.state is not DeviceState.REVOKED), None)

    def _form(self, flow: http.HTTPFlow, ctx: RequestContext, account: str) -> None:
        known = self._known(flow, ctx, self.runtime.devices)
        if known is not None:
            respond(flow, pages.enrolled(known.id, known.label or "", known.state.value))
            return
        browser_id, headers = csrf_browser_id(flow, ctx)
        respond(flow, pages.enrol_form(ctx.snapshot.policy.gateway.prefix,
                                       csrf_token(self.runtime.keys, browser_id, "enroll"), account, headers=headers))

    async def _enrol(self, flow: http.HTTPFlow, ctx: RequestContext, account: str) -> None:
        policy = ctx.snapshot.policy
        form = read_form(flow.request)
        if form is None:
            respond(flow, bad_request(ctx.request_id, as_json=ctx.as_json, what="form"))
            return
        browser_id, headers = csrf_browser_id(flow, ctx)
        csrf = csrf_token(self.runtime.keys, browser_id, "enroll")
        if not csrf_valid(self.runtime.keys, gate_cookie(flow, ctx, GateCookie.CSRF), "enroll", form.get("csrf")):
            respond(flow, pages.enrol_form(policy.gateway.prefix, csrf, account, status=400, headers=headers,
                                           message=("请重新提交表单。", "Please submit the form again.")))
            return
        label = " ".join(form.get("label", "").split())
        if not 1 <= len(label) <= pages.MAX_LABEL or not label.isprintable():
            respond(flow, pages.enrol_form(policy.gateway.prefix, csrf, account, status=400, headers=headers,
                                           message=(f"请填写设备名称（1–{pages.MAX_LABEL} 字）。",
                                                    f"Give the device a name (1 to {pages.MAX_LABEL} characters).")))
            return
        if self._known(flow, ctx, self.runtime.devices) is not None:
            self._form(flow, ctx, account)  # enrolled already: say so, never a second entry for one browser
            return
        now = self.runtime.now()
        token = device_cookie.new_token()  # 256 bits; only its SHA-256 is kept
        device = RegisteredDevice(
            id=f"{_NOT_IN_ID.sub('-', account)[:40]}-browser-{secrets.token_hex(3)}", account=account,
            kind=DeviceKind.BROWSER, state=DeviceState.PENDING, created=now, token_sha256=token_digest(token),
            label=label)
        try:
            await self.runtime.enrol_device(device)
        except DeviceError as exc:
            logger.error("enrol.failed request_id=%s error=%s", ctx.request_id, exc)
            respond(flow, unavailable(ctx.request_id, "devices", as_json=ctx.as_json))
            return
        self._audit(flow, ctx, "device.enrolled", AuditDecision.OK, account, device.id, now=now)
        cookie = set_cookie(GateCookie.DEVICE, device_cookie.cookie_value(self.runtime.keys, token),
                            insecure=policy.gateway.insecure, max_age=DEVICE_COOKIE_DAYS * 86400)
        respond(flow, pages.enrolled(device.id, label, device.state.value,
                                     headers=(*headers, ("Set-Cookie", cookie))))

    def _audit(self, flow: http.HTTPFlow, ctx: RequestContext, event: str, decision: AuditDecision, account: str,
               device: str | None, *, reason: str | None = None, now: datetime | None = None) -> None:
        self.runtime.audit.emit(request_event(ctx, flow, event, decision, time=now or self.runtime.now(),
                                              account=account, device=device, reason=reason, article=ARTICLE))
