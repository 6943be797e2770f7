"""The gate's own pages under ``gateway.prefix``: login, mfa, logout, leave (and leave-form), health.

Glue, as the gate is: each page reads the request (form, cookies, context), asks the core what follows
(``govgate.core.login`` for a password or TOTP attempt, in the order it documents; ``govgate.core.csrf``;
``govgate.core.next_path``), makes the store calls, audits, and answers with a page from ``govgate.pages``.

Art. 30 (第三十条): multi-factor login (password, then TOTP), login-failure limits, timeout logout. Art. 19
(第十九条): no attempt from where no staff rule could admit anyone (``docs/decisions.md``, "No password
guessing from where nobody may enter"). Anything unexpected fails closed: the store down → 503, else 403.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable
from dataclasses import replace
from datetime import datetime

from mitmproxy import http

from govgate.addons.context import RequestContext, context_of, gate_cookie, redirect, request_event, respond
from govgate.addons.gate import device_of
from govgate.cookies import GateCookie, clear_cookie, set_cookie
from govgate.core import totp
from govgate.core.accounts import Account
from govgate.core.audit_event import AuditDecision
from govgate.core.csrf import csrf_token, csrf_valid, is_browser_id, new_browser_id
from govgate.core.decide import LoginGate, account_admitted, login_gate
from govgate.core.leave_link import FORM_PAGE
from govgate.core.login import (
    PENDING_TTL,
    Attempt,
    AttemptLocks,
    AttemptSteps,
    Outcome,
    PendingState,
    account_usable,
    attempt,
    client_key,
    failure_key,
    pending_state,
    typed_name,
    unknown_name_hash,
)
from govgate.core.next_path import back_path, safe_next
from govgate.core.passwords import dummy_hash, verify_password
from govgate.core.sessions import new_session_id
from govgate.errors import AccountError, StoreUnavailable
from govgate.health import observe
from govgate.pages import login as login_pages
from govgate.pages.health import health
from govgate.pages.layout import Page
from govgate.pages.leave import LeaveView, leave_form_page, leave_page
from govgate.pages.refusal import bad_request, forbidden, method_not_allowed, not_found, too_many, unavailable
from govgate.repeated import REPEATED
from govgate.runtime import Runtime
from govgate.store.base import PendingLogin, Session

logger = logging.getLogger(__name__)

MAX_FORM_BYTES = 16 * 1024
PENDING_SECONDS = int(PENDING_TTL.total_seconds())

type Extra = dict[str, str | int | bool | None]


def _is_text(value: str) -> bool:
    """No lone surrogates (mitmproxy's stand-ins for bytes that are not UTF-8)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True



def csrf_browser_id(flow: http.HTTPFlow, ctx: RequestContext) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The browser id CSRF tokens are bound to, and the header that sets it when the browser has none (the
    login, sign-out and enrolment forms)."""
    browser_id = gate_cookie(flow, ctx, GateCookie.CSRF)
    if browser_id is not None and is_browser_id(browser_id):
        return browser_id, ()
    browser_id = new_browser_id()
    insecure = ctx.snapshot.policy.gateway.insecure
    return browser_id, (("Set-Cookie", set_cookie(GateCookie.CSRF, browser_id, insecure=insecure)),)

def read_form(request: http.Request) -> dict[str, str] | None:
    """The fields of a small ``application/x-www-form-urlencoded`` body; None for anything else."""
    content = request.raw_content or b""
    if len(content) > MAX_FORM_BYTES:
        return None
    if request.headers.get("content-encoding", "identity").strip().lower() not in ("", "identity"):
        return None  # never inflate a body before login: a 500-byte brotli bomb is gigabytes
    if "application/x-www-form-urlencoded" not in request.headers.get("content-type", "").lower():
        return None
    try:
        form = request.urlencoded_form
    except (ValueError, UnicodeDecodeError):
        return None
    fields = {k: v for k, v in form.items(multi=False)}
    # Bytes that are not UTF-8 arrive as lone surrogates: refused here (400), so no name, code or token that
    # cannot be hashed, stored, counted or audited goes further.
    if not all(_is_text(k) and _is_text(v) for k, v in fields.items()):
        return None
    return fields


class GatePages:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.attempts = AttemptLocks()

    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        """Only paths under the gate's prefix are ours; for them the rest is returned as a coroutine (mitmproxy awaits
        what a hook returns): any other request passes without one (govgate/dispatch.py answers its hook without a
        task)."""
        if flow.response or flow.error or not flow.live:
            return None
        ctx = context_of(flow)
        if ctx is None:
            return None
        prefix = ctx.snapshot.policy.gateway.prefix
        path = flow.request.path.split("?", 1)[0]
        if path != prefix and not path.startswith(prefix + "/"):
            return None
        return self._page(flow, ctx, path[len(prefix) + 1:])

    async def _page(self, flow: http.HTTPFlow, ctx: RequestContext, page: str) -> None:
        method = flow.request.method
        try:
            if page == "health" and method in ("GET", "HEAD"):
                await self._health(flow, ctx)
            elif page in ("login", "mfa", "logout") and method not in ("GET", "POST"):
                respond(flow, method_not_allowed())
            elif page == "login":
                await (self._login_get(flow, ctx) if method == "GET" else self._login_post(flow, ctx))
            elif page == "mfa":
                await (self._mfa_get(flow, ctx) if method == "GET" else self._mfa_post(flow, ctx))
            elif page == "logout":
                await (self._logout_get(flow, ctx) if method == "GET" else self._logout_post(flow, ctx))
            elif page == "leave" and method in ("GET", "HEAD"):
                self._leave(flow, ctx)
            elif page.startswith(FORM_PAGE + "/") and method in ("GET", "HEAD", "POST"):
                self._leave_form(flow, ctx, page[len(FORM_PAGE) + 1:])
            else:
                respond(flow, not_found(ctx.request_id))
        except StoreUnavailable as exc:
            REPEATED.warning(logger, "store.unavailable", "store.unavailable request_id=%s page=%s error=%s",
                             ctx.request_id, page, exc)
            respond(flow, unavailable(ctx.request_id, "store", as_json=ctx.as_json))
        except Exception:
            logger.exception("pages.error request_id=%s page=%s", ctx.request_id, page)
            respond(flow, forbidden("denied", ctx.request_id, as_json=ctx.as_json))

    # -- helpers ----------------------------------------------------------------------------------
    def _event(self, ctx: RequestContext, flow: http.HTTPFlow, event: str, decision: AuditDecision, *,
               account: str | None = None, reason: str | None = None, article: str | None = "Art. 30",
               device: str | None = None, extra: Extra | None = None) -> None:
        self.runtime.audit.emit(request_event(ctx, flow, event, decision, time=self.runtime.now(), reason=reason,
                                              account=account, device=device, article=article, extra=extra))

    def _csrf_ok(self, flow: http.HTTPFlow, ctx: RequestContext, name: str, form: dict[str, str]) -> bool:
        return csrf_valid(self.runtime.keys, gate_cookie(flow, ctx, GateCookie.CSRF), name, form.get("csrf"))

    def _locked_page(self, ctx: RequestContext, until: datetime) -> Page:
        return too_many(ctx.request_id, until.astimezone(ctx.snapshot.policy.gateway.timezone), self.runtime.now(),
                        as_json=ctx.as_json)

    def _gate(self, flow: http.HTTPFlow, ctx: RequestContext, now: datetime) -> tuple[LoginGate, str | None]:
        """Could any staff rule admit this client (Art. 19), and the allowlisted device it comes from."""
        device = device_of(ctx, flow, self.runtime.keys, now)
        return login_gate(ctx.client, ctx.country, device, ctx.snapshot.compiled, now), device

    async def _locked_until(self, ctx: RequestContext, account: str | None, now: datetime) -> datetime | None:
        lock = await self.runtime.store.lock_state(account, client_key(ctx.client), now)
        return lock.locked_until if lock.locked else None

    async def _count_failure(self, flow: http.HTTPFlow, ctx: RequestContext, account: str, stage: str,
                             known: bool) -> datetime | None:
        """Count one failed attempt against ``account`` and the address; audit it, and the lock it may start."""
        state = await self.runtime.store.record_failure(account, client_key(ctx.client), self.runtime.now(),
                                                        ctx.snapshot.policy.login)
        named = account if known else None
        self._event(ctx, flow, f"{stage}.failure", AuditDecision.REFUSE, account=named, reason="credentials",
                    extra=None if known else {"username_hash": unknown_name_hash(self.runtime.keys, account)})
        if state.account_lock_started or state.client_lock_started:
            self._event(ctx, flow, "lockout", AuditDecision.REFUSE, account=named, reason="locked",
                        extra={"until": state.locked_until.isoformat() if state.locked_until else None})
        return state.locked_until if state.locked else None

    def _refused_or_locked(self, flow: http.HTTPFlow, ctx: RequestContext, result: Attempt, stage: str,
                           account: str | None) -> bool:
        """Answer the outcomes both steps answer alike: REFUSED (403, Art. 19) and LOCKED (429). True if answered."""
        if result.outcome is Outcome.REFUSED:
            reason = str(result.reason)
            self._event(ctx, flow, f"{stage}.refused", AuditDecision.REFUSE, account=account, reason=reason,
                        article="Art. 19")
            respond(flow, forbidden(reason, ctx.request_id, as_json=ctx.as_json))
            return True
        if result.outcome is Outcome.LOCKED and result.locked_until is not None:
            self._event(ctx, flow, f"{stage}.locked", AuditDecision.REFUSE, account=account, reason="locked")
            respond(flow, self._locked_page(ctx, result.locked_until))
            return True
        return False

    # -- health -----------------------------------------------------------------------------------
    async def _health(self, flow: http.HTTPFlow, ctx: RequestContext) -> None:
        seen = await observe(self.runtime)
        policy = ctx.snapshot.policy
        age = seen.geoip_age_seconds
        respond(flow, health(policy_version=seen.policy_version, data_version=seen.data_version,
                             policy_sha256=policy.sha256, store_kind="redis" if policy.state.redis_url else "memory",
                             store_reachable=seen.facts.store_reachable, audit_writable=seen.facts.audit_writable,
                             reasons=seen.reasons, geoip_age_days=None if age is None else age / 86400,
                             workers=seen.workers))

    # -- login: the password step -----------------------------------------------------------------
    async def _login_get(self, flow: http.HTTPFlow, ctx: RequestContext) -> None:
        prefix = ctx.snapshot.policy.gateway.prefix
        browser_id, headers = csrf_browser_id(flow, ctx)
        next_path = safe_next(flow.request.query.get("next"), prefix)
        respond(flow, login_pages.login_form(prefix, csrf_token(self.runtime.keys, browser_id, "login"), next_path,
                                             headers=headers))

    async def _login_post(self, flow: http.HTTPFlow, ctx: RequestContext) -> None:
        form = read_form(flow.request)
        username = typed_name((form or {}).get("username"))
        async with self.attempts.hold(*AttemptLocks.keys(username, ctx.client)):
            await self._login_attempt(flow, ctx, form)

    async def _login_attempt(self, flow: http.HTTPFlow, ctx: RequestContext, form: dict[str, str] | None) -> None:
        prefix = ctx.snapshot.policy.gateway.prefix
        if form is None:
            respond(flow, bad_request(ctx.request_id, as_json=ctx.as_json, what="form"))
            return
        next_path = safe_next(form.get("next"), prefix)
        browser_id, headers = csrf_browser_id(flow, ctx)
        token = csrf_token(self.runtime.keys, browser_id, "login")
        if not self._csrf_ok(flow, ctx, "login", form):
            self._event(ctx, flow, "login.csrf", AuditDecision.REFUSE, reason="csrf")
            respond(flow, login_pages.login_form(prefix, token, next_path, message=login_pages.CSRF_FAILED,
                                                 status=400, headers=headers))
            return
        username = typed_name(form.get("username"))
        password = form.get("password", "")
        now = self.runtime.now()
        account = ctx.snapshot.accounts.get(username) if username else None
        named = account.name if account else None
        failed_form = login_pages.login_form(prefix, token, next_path, message=login_pages.LOGIN_FAILED,
                                             username=username, headers=headers)
        gate, device = self._gate(flow, ctx, now)

        async def stand_in() -> None:
            # The work a real failure costs: a dummy Argon2id verification and the store read it would make.
            await asyncio.to_thread(verify_password, password, dummy_hash())
            await self.runtime.store.lock_state(username or None, client_key(ctx.client), now)

        async def verify() -> bool:
            encoded = account.password_hash if account is not None else dummy_hash()
            return await asyncio.to_thread(verify_password, password, encoded) and account is not None

        steps = AttemptSteps(
            locked_until=lambda: self._locked_until(ctx, username or None, now),
            stand_in=stand_in,
            verify=verify,
            count_failure=lambda: self._count_failure(flow, ctx, failure_key(username), "login", account is not None),
        )
        admitted = account_admitted(gate, username, device, ctx.country, ctx.snapshot.compiled, now)
        result = await attempt(gate, admitted, steps)
        if self._refused_or_locked(flow, ctx, result, "login", named):
            return
        if result.outcome is Outcome.NOT_ADMITTED:
            # Art. 19 + Art. 30: from abroad, an account no grant admits gets exactly what a failed login gets, its
            # password unchecked and nothing counted (grant holders cannot be enumerated, nobody locked out).
            extra: Extra = {"counted": False}
            if account is None:
                extra["username_hash"] = unknown_name_hash(self.runtime.keys, username)
            self._event(ctx, flow, "login.failure", AuditDecision.REFUSE, account=named, reason="overseas",
                        article="Art. 19", extra=extra)
            respond(flow, failed_form)
            return
        if result.outcome is Outcome.FAILED or account is None:
            respond(flow, self._locked_page(ctx, result.locked_until) if result.locked_until else failed_form)
            return
        if not account_usable(account, now):
            # Art. 25: authorisation withdrawn when it expires. The password was right, so saying so leaks nothing.
            self._event(ctx, flow, "login.failure", AuditDecision.REFUSE, account=account.name, reason="account")
            respond(flow, forbidden("account", ctx.request_id, as_json=ctx.as_json))
            return
        pending = PendingLogin(id=secrets.token_urlsafe(32), account=account.name, next=next_path,
                               client=str(ctx.client), created=now)
        await self.runtime.store.put_pending_login(pending, PENDING_TTL)
        self._event(ctx, flow, "login.password", AuditDecision.OK, account=account.name)
        insecure = ctx.snapshot.policy.gateway.insecure
        redirect(flow, f"{prefix}/mfa", headers=(
            ("Set-Cookie", set_cookie(GateCookie.PENDING, pending.id, insecure=insecure, max_age=PENDING_SECONDS)),
            *headers,
        ))

    # -- mfa: the TOTP step -------------------------------------------------------------------------
    async def _pending(self, flow: http.HTTPFlow, ctx: RequestContext) -> PendingLogin | None:
        """The login this browser half did from this address, if it may still be finished."""
        pending_id = gate_cookie(flow, ctx, GateCookie.PENDING)
        if not pending_id or len(pending_id) > 64:
            return None
        pending = await self.runtime.store.get_pending_login(pending_id)
        if pending is None:
            return None
        state = pending_state(pending.client, pending.created, ctx.client, ctx.snapshot.accounts.get(pending.account),
                              self.runtime.now())
        if state is PendingState.VOID:
            await self.runtime.store.delete_pending_login(pending_id)
        return pending if state is PendingState.USABLE else None

    def _back_to_login(self, flow: http.HTTPFlow, ctx: RequestContext) -> None:
        gw = ctx.snapshot.policy.gateway
        redirect(flow, f"{gw.prefix}/login",
                 headers=(("Set-Cookie", clear_cookie(GateCookie.PENDING, insecure=gw.insecure)),))

    async def _mfa_get(self, flow: http.HTTPFlow, ctx: RequestContext) -> None:
        if await self._pending(flow, ctx) is None:
            self._back_to_login(flow, ctx)
            return
        browser_id, headers = csrf_browser_id(flow, ctx)
        respond(flow, login_pages.mfa_form(ctx.snapshot.policy.gateway.prefix,
                                           csrf_token(self.runtime.keys, browser_id, "mfa"), headers=headers))

    async def _mfa_post(self, flow: http.HTTPFlow, ctx: RequestContext) -> None:
        prefix = ctx.snapshot.policy.gateway.prefix
        form = read_form(flow.request)
        if form is None:
            respond(flow, bad_request(ctx.request_id, as_json=ctx.as_json, what="form"))
            return
        browser_id, headers = csrf_browser_id(flow, ctx)
        token = csrf_token(self.runtime.keys, browser_id, "mfa")
        if not self._csrf_ok(flow, ctx, "mfa", form):
            self._event(ctx, flow, "mfa.csrf", AuditDecision.REFUSE, reason="csrf")
            respond(flow, login_pages.mfa_form(prefix, token, message=login_pages.CSRF_FAILED, status=400,
                                               headers=headers))
            return
        pending = await self._pending(flow, ctx)
        if pending is None:
            self._back_to_login(flow, ctx)
            return
        async with self.attempts.hold(*AttemptLocks.keys(pending.account, ctx.client)):
            await self._mfa_attempt(flow, ctx, form, pending, token, headers)

    def _totp_step(self, ctx: RequestContext, account: Account | None, code: str, now: datetime) -> int | None:
        """The time step ``code`` is right for, if any (a disabled or unknown account has none)."""
        if account is None or account.disabled:
            return None
        try:
            secret = totp.decrypt_secret(self.runtime.keys, account.name, account.totp_secret)
        except AccountError:
            # The secret does not decrypt (key file replaced?): no code can match; `govgate check` says why.
            logger.error("mfa.secret_undecryptable request_id=%s", ctx.request_id)
            return None
        return totp.matching_step(secret, code, now)

    async def _mfa_attempt(self, flow: http.HTTPFlow, ctx: RequestContext, form: dict[str, str],
                           pending: PendingLogin, token: str, headers: tuple[tuple[str, str], ...]) -> None:
        policy = ctx.snapshot.policy
        prefix = policy.gateway.prefix
        if await self._pending(flow, ctx) is None:  # used up by a concurrent attempt while we waited
            self._back_to_login(flow, ctx)
            return
        now = self.runtime.now()
        name = pending.account
        gate, device = self._gate(flow, ctx, now)

        async def stand_in() -> None:
            await self.runtime.store.lock_state(name, client_key(ctx.client), now)

        async def verify() -> bool:
            # Art. 30: each code is accepted once only (the last used step is stored atomically).
            step = self._totp_step(ctx, ctx.snapshot.accounts.get(name), form.get("code", "").strip(), now)
            return step is not None and await self.runtime.store.use_totp_step(name, step)

        steps = AttemptSteps(
            locked_until=lambda: self._locked_until(ctx, name, now),
            stand_in=stand_in,
            verify=verify,
            count_failure=lambda: self._count_failure(flow, ctx, name, "mfa", known=True),
        )
        admitted = account_admitted(gate, name, device, ctx.country, ctx.snapshot.compiled, now)
        result = await attempt(gate, admitted, steps)
        if self._refused_or_locked(flow, ctx, result, "mfa", name):
            return
        failed_form = login_pages.mfa_form(prefix, token, message=login_pages.MFA_FAILED, headers=headers)
        if result.outcome is Outcome.NOT_ADMITTED:
            # The grant ended (or the policy changed) since the password step: a code is not checked, nothing
            # counts, and no session is opened that could not be used (Art. 19, Art. 30).
            self._event(ctx, flow, "mfa.failure", AuditDecision.REFUSE, account=name, reason="overseas",
                        article="Art. 19", extra={"counted": False})
            respond(flow, failed_form)
            return
        if result.outcome is Outcome.FAILED:
            respond(flow, self._locked_page(ctx, result.locked_until) if result.locked_until else failed_form)
            return
        await self.runtime.store.delete_pending_login(pending.id)
        await self.runtime.store.clear_failures(name)
        # A new id at every login: no session fixation.
        session = Session(id=new_session_id(), account=name, device=device, client=str(ctx.client), created=now,
                          last_seen=now)
        await self.runtime.store.create_session(session, policy.session)
        self._event(ctx, flow, "login.success", AuditDecision.ALLOW, account=name, device=device)
        insecure = policy.gateway.insecure
        redirect(flow, safe_next(pending.next, prefix), headers=(
            ("Set-Cookie", set_cookie(GateCookie.SESSION, session.id, insecure=insecure)),
            ("Set-Cookie", clear_cookie(GateCookie.PENDING, insecure=insecure)),
        ))

    # -- logout -----------------------------------------------------------------------------------
    async def _logout_get(self, flow: http.HTTPFlow, ctx: RequestContext) -> None:
        browser_id, headers = csrf_browser_id(flow, ctx)
        respond(flow, login_pages.logout_form(ctx.snapshot.policy.gateway.prefix,
                                              csrf_token(self.runtime.keys, browser_id, "logout"), headers=headers))

    async def _logout_post(self, flow: http.HTTPFlow, ctx: RequestContext) -> None:
        policy = ctx.snapshot.policy
        form = read_form(flow.request)
        if form is None or not self._csrf_ok(flow, ctx, "logout", form):
            respond(flow, bad_request(ctx.request_id, as_json=ctx.as_json, what="csrf"))
            return
        session_id = gate_cookie(flow, ctx, GateCookie.SESSION)
        account = None
        if session_id:
            lookup = await self.runtime.store.touch_session(session_id, self.runtime.now(), policy.session)
            account = lookup.session.account if lookup.session else None
            await self.runtime.store.delete_session(session_id)
        pending_id = gate_cookie(flow, ctx, GateCookie.PENDING)
        if pending_id:  # signing out also ends a login half done in this browser (password given, no code yet)
            await self.runtime.store.delete_pending_login(pending_id)
        self._event(ctx, flow, "logout", AuditDecision.OK, account=account)
        insecure = policy.gateway.insecure
        page = login_pages.logged_out(policy.gateway.prefix)
        respond(flow, replace(page, headers=(*page.headers,
                                             ("Set-Cookie", clear_cookie(GateCookie.SESSION, insecure=insecure)),
                                             ("Set-Cookie", clear_cookie(GateCookie.PENDING, insecure=insecure)))))

    # -- leave (Art. 15) --------------------------------------------------------------------------
    def _leave(self, flow: http.HTTPFlow, ctx: RequestContext) -> None:
        result = leave_page(ctx.snapshot.policy, self.runtime.keys, flow.request.query, back=self._back(flow, ctx))
        self._left(flow, ctx, result)

    def _leave_form(self, flow: http.HTTPFlow, ctx: RequestContext, rest: str) -> None:
        """A form whose target leaves the site was submitted here instead: the warning page passes its fields on to
        the destination if the user continues; nothing of it is forwarded to the portal."""
        request = flow.request
        _, has_query, query = request.path.partition("?")
        result = leave_form_page(self.runtime.keys, rest, method=request.method, query=query if has_query else None,
                                 body=(request.raw_content or b"") if request.method == "POST" else b"",
                                 content_type=request.headers.get("content-type", ""),
                                 content_encoding=request.headers.get("content-encoding", ""),
                                 back=self._back(flow, ctx))
        self._left(flow, ctx, result)

    @staticmethod
    def _back(flow: http.HTTPFlow, ctx: RequestContext) -> str:
        """The warning page's "Back": the page the link was on, when the Referer is one of this site's pages."""
        gateway = ctx.snapshot.policy.gateway
        return back_path(flow.request.headers.get("referer"), gateway.public_hosts, gateway.prefix)

    def _left(self, flow: http.HTTPFlow, ctx: RequestContext, result: LeaveView) -> None:
        decision = AuditDecision.ALLOW if result.valid else AuditDecision.REFUSE
        extra: Extra = {"destination_host": result.destination_host}
        if result.form is not None:  # how many fields were passed on, never what they hold
            extra.update(form=result.form, fields=result.fields, not_carried=result.not_carried)
        self._event(ctx, flow, "leave.view", decision, reason=result.reason, article="Art. 15", extra=extra)
        respond(flow, result.page)
