"""The gate's own pages under ``prefix`` (contract §5): login, mfa, logout, leave, health.

Art. 30 (第三十条): multi-factor login (password, then TOTP), login-failure limits, timeout logout.
Password and TOTP failures both count towards the lock; while an account or address is locked,
``POST login`` and ``POST mfa`` answer 429 with the time the lock ends, before looking at the
credentials, so the answer never tells whether they were right. Unknown account and wrong password
get the same message and the same work (a dummy Argon2id verification).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta
from ipaddress import IPv6Address, IPv6Network

from mitmproxy import http

from addons.context import (
    RequestContext,
    clear_cookie,
    context_of,
    get_cookie,
    redirect,
    respond,
    set_cookie,
)
from addons.gate import SESSION_COOKIE, device_of
from govgate.core import totp
from govgate.core.accounts import Account
from govgate.core.audit_event import AuditEvent
from govgate.core.csrf import csrf_token, csrf_valid, new_browser_id
from govgate.core.decide import LoginGate, account_admitted, login_gate
from govgate.core.keys import Purpose
from govgate.core.next_path import safe_next
from govgate.core.passwords import dummy_hash, verify_password
from govgate.core.sessions import new_session_id
from govgate.errors import AccountError, StoreUnavailable
from govgate.live_runtime import LiveRuntime
from govgate.pages import login as login_pages
from govgate.pages.layout import PAGE_HEADERS, Page, html_page
from govgate.pages.leave import leave_page
from govgate.pages.refusal import bad_request, forbidden, too_many, unavailable
from govgate.store.base import LockState, PendingLogin, Session

logger = logging.getLogger(__name__)

CSRF_COOKIE = "govgate-csrf"
PENDING_COOKIE = "govgate-pending"


def _is_text(value: str) -> bool:
    """No lone surrogates (mitmproxy's stand-ins for bytes that are not UTF-8)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
PENDING_TTL_SECONDS = 300  # the pre-MFA state lives 5 minutes
MAX_FORM_BYTES = 16 * 1024
MAX_USERNAME = 64


def _not_found(request_id: str) -> Page:
    return html_page("未找到 Not found", "<h1>未找到</h1><p>页面不存在。</p>",
                     f"<h2>Not found</h2><p>request id: <code>{request_id}</code></p>", status=404,
                     headers=PAGE_HEADERS)


def _method_not_allowed() -> Page:
    return html_page("方法不允许 Method not allowed", "<h1>方法不允许</h1>", "<h2>Method not allowed</h2>",
                     status=405, headers=PAGE_HEADERS)


def pending_still_valid(account: Account, pending: PendingLogin, now: datetime) -> bool:
    """A password step done before the account was disabled, expired, logged out by an administrator, or given a
    new password (passwd, reset-totp and disable also log out) must not turn into a session (Art. 30)."""
    if account.disabled or account.is_expired(now.date()):
        return False
    for changed in (account.logged_out_at, account.password_changed):
        if changed is not None and changed >= pending.created:
            return False
    return True


def client_key(ctx: RequestContext) -> str:
    """The address failures count against (Art. 30): IPv4 as is, IPv6 by its /64, since one
    subscriber usually holds a whole /64 and could otherwise rotate addresses freely."""
    if isinstance(ctx.client, IPv6Address):
        return str(IPv6Network((int(ctx.client) >> 64 << 64, 64)))
    return str(ctx.client)


class AttemptLocks:
    """Serialises login and MFA attempts per account name and per client address in this instance.

    Check-lock → verify → count must not interleave: otherwise a burst of concurrent attempts all pass
    the lock check before the first failure is counted, and many passwords are tried per lockout
    window. Locks are created on demand and dropped when nobody holds or waits for them. Across
    several instances sharing Redis, at most one extra attempt per instance can slip past the limit.
    """

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, *names: str) -> AsyncIterator[None]:
        keys = sorted({n for n in names if n})  # one global order: no deadlocks
        for key in keys:
            lock, users = self._locks.get(key, (asyncio.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        acquired: list[asyncio.Lock] = []
        try:
            for key in keys:
                lock = self._locks[key][0]
                await lock.acquire()
                acquired.append(lock)
            yield
        finally:
            for lock in acquired:
                lock.release()
            for key in keys:
                lock, users = self._locks[key]
                if users <= 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


class GatePages:
    def __init__(self, runtime: LiveRuntime) -> None:
        self.runtime = runtime
        self.attempts = AttemptLocks()

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        ctx = context_of(flow)
        if ctx is None:
            return
        prefix = ctx.snapshot.policy.gateway.prefix
        path = flow.request.path.split("?", 1)[0]
        if path != prefix and not path.startswith(prefix + "/"):
            return
        page = path[len(prefix) + 1:]
        method = flow.request.method
        try:
            if page == "health" and method in ("GET", "HEAD"):
                await self._health(flow, ctx)
            elif page == "login":
                await (self._login_get(flow, ctx) if method == "GET" else self._login_post(flow, ctx))
            elif page == "mfa":
                await (self._mfa_get(flow, ctx) if method == "GET" else self._mfa_post(flow, ctx))
            elif page == "logout":
                await (self._logout_get(flow, ctx) if method == "GET" else self._logout_post(flow, ctx))
            elif page == "leave" and method in ("GET", "HEAD"):
                self._leave(flow, ctx)
            else:
                respond(flow, _not_found(ctx.request_id))
        except StoreUnavailable as exc:
            logger.warning("store.unavailable request_id=%s page=%s error=%s", ctx.request_id, page, exc)
            respond(flow, unavailable(ctx.request_id, "store", as_json=ctx.as_json))
        except Exception:
            logger.exception("pages.error request_id=%s page=%s", ctx.request_id, page)
            respond(flow, forbidden("denied", ctx.request_id, as_json=ctx.as_json))

    # -- helpers ----------------------------------------------------------------------------------
    def _event(self, ctx: RequestContext, flow: http.HTTPFlow, event: str, decision: str, *,
               account: str | None = None, reason: str | None = None, article: str | None = "Art. 30",
               device: str | None = None, extra: dict[str, str | int | bool | None] | None = None) -> None:
        self.runtime.audit.emit(AuditEvent(
            event=event, time=self.runtime.now(), request_id=ctx.request_id, client=str(ctx.client),
            country=ctx.snapshot.geoip.country(ctx.client), device=device, account=account,
            method=flow.request.method, host=ctx.host, path=flow.request.path.split("?", 1)[0][:256], rule=None,
            decision=decision, reason=reason, article=article, extra=extra or {},
        ))

    def _browser_id(self, flow: http.HTTPFlow, ctx: RequestContext) -> tuple[str, list[tuple[str, str]]]:
        insecure = ctx.snapshot.policy.gateway.insecure
        browser_id = get_cookie(flow, CSRF_COOKIE, insecure)
        if browser_id and 20 <= len(browser_id) <= 64:
            return browser_id, []
        browser_id = new_browser_id()
        return browser_id, [("Set-Cookie", set_cookie(CSRF_COOKIE, browser_id, insecure=insecure))]

    def _form(self, flow: http.HTTPFlow) -> dict[str, str] | None:
        content = flow.request.raw_content or b""
        if len(content) > MAX_FORM_BYTES:
            return None
        if flow.request.headers.get("content-encoding", "identity").strip().lower() not in ("", "identity"):
            return None  # never inflate a body before login: a 500-byte brotli bomb is gigabytes
        ctype = flow.request.headers.get("content-type", "")
        if "application/x-www-form-urlencoded" not in ctype.lower():
            return None
        try:
            form = flow.request.urlencoded_form
        except (ValueError, UnicodeDecodeError):
            return None
        fields = {k: v for k, v in form.items(multi=False)}
        # Bytes that are not UTF-8 arrive as lone surrogates: refused here (400), so no name, code or token
        # that cannot be hashed, stored, counted or audited goes further.
        if not all(_is_text(k) and _is_text(v) for k, v in fields.items()):
            return None
        return fields

    def _csrf_ok(self, flow: http.HTTPFlow, ctx: RequestContext, name: str, form: dict[str, str]) -> bool:
        browser_id = get_cookie(flow, CSRF_COOKIE, ctx.snapshot.policy.gateway.insecure)
        return csrf_valid(self.runtime.keys, browser_id, name, form.get("csrf"))

    def _locked_page(self, ctx: RequestContext, until: datetime) -> Page:
        return too_many(ctx.request_id, until.astimezone(ctx.snapshot.policy.gateway.timezone), self.runtime.now(),
                        as_json=ctx.as_json)

    def _username_hash(self, username: str, *, known: bool) -> dict[str, str | int | bool | None]:
        """For a name that is no account: a keyed hash instead of the name (it may be a mistyped password)."""
        if known:
            return {}
        return {"username_hash": self.runtime.keys.mac(Purpose.IDENTIFIER_HASH, username.encode()).hex()[:16]}

    def _login_gate(self, flow: http.HTTPFlow, ctx: RequestContext, now: datetime, account: str | None,
                    stage: str) -> LoginGate | None:
        """Art. 19 + Art. 30 (contract §5): a password or TOTP attempt from where no staff rule could admit
        anyone (by network, device or any active grant) is refused with 403 before anything is checked or
        counted. Returns the gate when the attempt may go on; otherwise answers and returns None."""
        snapshot = ctx.snapshot
        gate = login_gate(ctx.client, snapshot.geoip.country(ctx.client), device_of(ctx, flow, now),
                          snapshot.compiled, now)
        if gate.open:
            return gate
        reason = gate.reason.value if gate.reason is not None else "denied"
        self._event(ctx, flow, f"{stage}.refused", "refuse", account=account, reason=reason, article="Art. 19")
        respond(flow, forbidden(reason, ctx.request_id, as_json=ctx.as_json))
        return None

    def _account_may_enter(self, flow: http.HTTPFlow, ctx: RequestContext, gate: LoginGate, account: str,
                           now: datetime) -> bool:
        snapshot = ctx.snapshot
        return account_admitted(gate, account, device_of(ctx, flow, now), snapshot.geoip.country(ctx.client),
                                snapshot.compiled, now)

    async def _count_failure(self, flow: http.HTTPFlow, ctx: RequestContext, account: str, stage: str,
                             known: bool) -> LockState:
        policy = ctx.snapshot.policy
        # Unknown names are counted under their own name too, so lockout behaves the same for every
        # name and cannot be used to find out which accounts exist.
        state = await self.runtime.store.record_failure(account, client_key(ctx), self.runtime.now(), policy.login)
        self._event(ctx, flow, f"{stage}.failure", "refuse", account=account if known else None,
                    reason="credentials", extra=self._username_hash(account, known=known) or None)
        if state.account_lock_started or state.client_lock_started:
            self._event(ctx, flow, "lockout", "refuse", account=account if known else None, reason="locked",
                        extra={"until": state.locked_until.isoformat() if state.locked_until else None})
        return state

    # -- health -----------------------------------------------------------------------------------
    async def _health(self, flow: http.HTTPFlow, ctx: RequestContext) -> None:
        store_ok = True
        try:
            await self.runtime.store.ping()
        except StoreUnavailable:
            store_ok = False
        writer = self.runtime.audit_writer
        policy = ctx.snapshot.policy
        body = {
            "status": "ok" if store_ok and writer.healthy else "degraded",
            "policy_version": self.runtime.policy_version,
            "policy_sha256": policy.sha256,
            "store": {"reachable": store_ok, "kind": "redis" if policy.state.redis_url else "memory"},
            "audit": {"writable": writer.healthy},
        }
        respond(flow, Page(status=200 if store_ok and writer.healthy else 503,
                           body=json.dumps(body).encode(), content_type="application/json",
                           headers=(("Cache-Control", "no-store"),)))

    # -- login ------------------------------------------------------------------------------------
    async def _login_get(self, flow: http.HTTPFlow, ctx: RequestContext) -> None:
        policy = ctx.snapshot.policy
        browser_id, headers = self._browser_id(flow, ctx)
        next_path = safe_next(flow.request.query.get("next"), policy.gateway.prefix)
        respond(flow, login_pages.login_form(policy.gateway.prefix, csrf_token(self.runtime.keys, browser_id, "login"),
                                             next_path, headers=tuple(headers)))

    async def _login_post(self, flow: http.HTTPFlow, ctx: RequestContext) -> None:
        if flow.request.method != "POST":
            respond(flow, _method_not_allowed())
            return
        form = self._form(flow)
        username = (form or {}).get("username", "").strip()[:MAX_USERNAME]
        async with self.attempts.hold(f"account:{username}" if username else "", f"client:{client_key(ctx)}"):
            await self._login_attempt(flow, ctx, form)

    async def _login_attempt(self, flow: http.HTTPFlow, ctx: RequestContext, form: dict[str, str] | None) -> None:
        policy = ctx.snapshot.policy
        prefix = policy.gateway.prefix
        if form is None:
            respond(flow, bad_request(ctx.request_id, as_json=ctx.as_json, what="form"))
            return
        next_path = safe_next(form.get("next"), prefix)
        browser_id, headers = self._browser_id(flow, ctx)
        token = csrf_token(self.runtime.keys, browser_id, "login")
        if not self._csrf_ok(flow, ctx, "login", form):
            self._event(ctx, flow, "login.csrf", "refuse", reason="csrf")
            respond(flow, login_pages.login_form(prefix, token, next_path, message=login_pages.CSRF_FAILED,
                                                 status=400, headers=tuple(headers)))
            return
        username = form.get("username", "").strip()[:MAX_USERNAME]
        password = form.get("password", "")
        now = self.runtime.now()
        account = ctx.snapshot.accounts.get(username) if username else None
        gate = self._login_gate(flow, ctx, now, account.name if account else None, "login")
        if gate is None:
            return
        # Locked: answer 429 before looking at the credentials (Art. 30).
        lock = await self.runtime.store.lock_state(username or None, client_key(ctx), now)
        if lock.locked and lock.locked_until is not None:
            self._event(ctx, flow, "login.locked", "refuse", account=account.name if account else None,
                        reason="locked")
            respond(flow, self._locked_page(ctx, lock.locked_until))
            return
        if not self._account_may_enter(flow, ctx, gate, username, now):
            # Art. 19 + Art. 30: from abroad, only an account a grant admits may try its password. Anyone else
            # gets exactly what a failed login gets (same page, status and work: a dummy Argon2id verification
            # and a store read stand in for the real ones), so grant holders cannot be enumerated; nothing is
            # checked and nothing counts towards a lockout.
            await asyncio.to_thread(verify_password, password, dummy_hash())
            await self.runtime.store.lock_state(username or None, client_key(ctx), now)
            self._event(ctx, flow, "login.failure", "refuse", account=account.name if account else None,
                        reason="overseas", article="Art. 19", extra={"counted": False, **self._username_hash(
                            username, known=account is not None)})
            respond(flow, login_pages.login_form(prefix, token, next_path, message=login_pages.LOGIN_FAILED,
                                                 username=username, headers=tuple(headers)))
            return
        encoded = account.password_hash if account is not None else dummy_hash()
        ok = await asyncio.to_thread(verify_password, password, encoded)
        if not ok or account is None:
            state = await self._count_failure(flow, ctx, username or "-", "login", known=account is not None)
            if state.locked and state.locked_until is not None:
                respond(flow, self._locked_page(ctx, state.locked_until))
                return
            respond(flow, login_pages.login_form(prefix, token, next_path, message=login_pages.LOGIN_FAILED,
                                                 username=username, headers=tuple(headers)))
            return
        if account.disabled or account.is_expired(now.date()):
            # Art. 25: authorisation withdrawn when it expires. The password was right, so saying so leaks nothing.
            self._event(ctx, flow, "login.failure", "refuse", account=account.name, reason="account")
            respond(flow, forbidden("account", ctx.request_id, as_json=ctx.as_json))
            return
        pending = PendingLogin(id=secrets.token_urlsafe(32), account=account.name, next=next_path,
                               client=str(ctx.client), created=now)
        await self.runtime.store.put_pending_login(pending, timedelta(seconds=PENDING_TTL_SECONDS))
        self._event(ctx, flow, "login.password", "ok", account=account.name)
        redirect(flow, f"{prefix}/mfa", headers=(
            ("Set-Cookie", set_cookie(PENDING_COOKIE, pending.id, insecure=policy.gateway.insecure,
                                      max_age=PENDING_TTL_SECONDS)),
            *headers,
        ))

    # -- mfa --------------------------------------------------------------------------------------
    async def _pending(self, flow: http.HTTPFlow, ctx: RequestContext) -> PendingLogin | None:
        pending_id = get_cookie(flow, PENDING_COOKIE, ctx.snapshot.policy.gateway.insecure)
        if not pending_id or len(pending_id) > 64:
            return None
        pending = await self.runtime.store.get_pending_login(pending_id)
        if pending is None:
            return None
        if not hmac.compare_digest(pending.client.encode(), str(ctx.client).encode()):
            return None  # the password step was done from another address: start again
        account = ctx.snapshot.accounts.get(pending.account)
        if account is None or not pending_still_valid(account, pending, self.runtime.now()):
            await self.runtime.store.delete_pending_login(pending_id)
            return None
        if (self.runtime.now() - pending.created).total_seconds() > PENDING_TTL_SECONDS:
            await self.runtime.store.delete_pending_login(pending_id)
            return None
        return pending

    def _back_to_login(self, flow: http.HTTPFlow, ctx: RequestContext) -> None:
        policy = ctx.snapshot.policy
        redirect(flow, f"{policy.gateway.prefix}/login",
                 headers=(("Set-Cookie", clear_cookie(PENDING_COOKIE, insecure=policy.gateway.insecure)),))

    async def _mfa_get(self, flow: http.HTTPFlow, ctx: RequestContext) -> None:
        if await self._pending(flow, ctx) is None:
            self._back_to_login(flow, ctx)
            return
        browser_id, headers = self._browser_id(flow, ctx)
        respond(flow, login_pages.mfa_form(ctx.snapshot.policy.gateway.prefix,
                                           csrf_token(self.runtime.keys, browser_id, "mfa"), headers=tuple(headers)))

    async def _mfa_post(self, flow: http.HTTPFlow, ctx: RequestContext) -> None:
        if flow.request.method != "POST":
            respond(flow, _method_not_allowed())
            return
        policy = ctx.snapshot.policy
        prefix = policy.gateway.prefix
        form = self._form(flow)
        if form is None:
            respond(flow, bad_request(ctx.request_id, as_json=ctx.as_json, what="form"))
            return
        browser_id, headers = self._browser_id(flow, ctx)
        token = csrf_token(self.runtime.keys, browser_id, "mfa")
        if not self._csrf_ok(flow, ctx, "mfa", form):
            self._event(ctx, flow, "mfa.csrf", "refuse", reason="csrf")
            respond(flow, login_pages.mfa_form(prefix, token, message=login_pages.CSRF_FAILED, status=400,
                                               headers=tuple(headers)))
            return
        pending = await self._pending(flow, ctx)
        if pending is None:
            self._back_to_login(flow, ctx)
            return
        async with self.attempts.hold(f"account:{pending.account}", f"client:{client_key(ctx)}"):
            await self._mfa_attempt(flow, ctx, form, pending, token, headers)

    async def _mfa_attempt(self, flow: http.HTTPFlow, ctx: RequestContext, form: dict[str, str],
                           pending: PendingLogin, token: str, headers: list[tuple[str, str]]) -> None:
        policy = ctx.snapshot.policy
        prefix = policy.gateway.prefix
        if await self._pending(flow, ctx) is None:  # used up by a concurrent attempt while we waited
            self._back_to_login(flow, ctx)
            return
        now = self.runtime.now()
        account = ctx.snapshot.accounts.get(pending.account)
        gate = self._login_gate(flow, ctx, now, pending.account, "mfa")
        if gate is None:
            return
        lock = await self.runtime.store.lock_state(pending.account, client_key(ctx), now)
        if lock.locked and lock.locked_until is not None:
            self._event(ctx, flow, "mfa.locked", "refuse", account=pending.account, reason="locked")
            respond(flow, self._locked_page(ctx, lock.locked_until))
            return
        if not self._account_may_enter(flow, ctx, gate, pending.account, now):
            # The grant ended (or the policy changed) since the password step: a code is not checked, nothing
            # counts, and no session is opened that could not be used (Art. 19, Art. 30).
            await self.runtime.store.lock_state(pending.account, client_key(ctx), now)
            self._event(ctx, flow, "mfa.failure", "refuse", account=pending.account, reason="overseas",
                        article="Art. 19", extra={"counted": False})
            respond(flow, login_pages.mfa_form(prefix, token, message=login_pages.MFA_FAILED,
                                               headers=tuple(headers)))
            return
        code = form.get("code", "").strip()
        step = None
        if account is not None and not account.disabled:
            try:
                secret = totp.decrypt_secret(self.runtime.keys, account.name, account.totp_secret)
            except AccountError:
                # The secret does not decrypt (key file replaced?): no code can match; `govgate check` says why.
                logger.error("mfa.secret_undecryptable request_id=%s", ctx.request_id)
            else:
                step = totp.matching_step(secret, code, now)
        # Art. 30: each code is accepted once only (the last used step is stored atomically).
        if step is None or not await self.runtime.store.use_totp_step(pending.account, step):
            state = await self._count_failure(flow, ctx, pending.account, "mfa", known=True)
            if state.locked and state.locked_until is not None:
                respond(flow, self._locked_page(ctx, state.locked_until))
                return
            respond(flow, login_pages.mfa_form(prefix, token, message=login_pages.MFA_FAILED,
                                               headers=tuple(headers)))
            return
        await self.runtime.store.delete_pending_login(pending.id)
        await self.runtime.store.clear_failures(pending.account)
        device = device_of(ctx, flow, now)
        # A new id at every login: no session fixation.
        session = Session(id=new_session_id(), account=pending.account, device=device, client=str(ctx.client),
                          created=now, last_seen=now)
        await self.runtime.store.create_session(session, policy.session)
        self._event(ctx, flow, "login.success", "allow", account=pending.account, device=device)
        insecure = policy.gateway.insecure
        redirect(flow, safe_next(pending.next, prefix), headers=(
            ("Set-Cookie", set_cookie(SESSION_COOKIE, session.id, insecure=insecure)),
            ("Set-Cookie", clear_cookie(PENDING_COOKIE, insecure=insecure)),
        ))

    # -- logout -----------------------------------------------------------------------------------
    async def _logout_get(self, flow: http.HTTPFlow, ctx: RequestContext) -> None:
        prefix = ctx.snapshot.policy.gateway.prefix
        browser_id, headers = self._browser_id(flow, ctx)
        token = csrf_token(self.runtime.keys, browser_id, "logout")
        form = (f"<form method=\"post\" action=\"{prefix}/logout\"><input type=\"hidden\" name=\"csrf\" "
                f"value=\"{token}\"><button type=\"submit\">退出登录 Sign out</button></form>")
        respond(flow, html_page("退出 Sign out", f"<h1>退出登录</h1>{form}", "<h2>Sign out</h2>",
                                headers=(*PAGE_HEADERS, *headers)))

    async def _logout_post(self, flow: http.HTTPFlow, ctx: RequestContext) -> None:
        if flow.request.method != "POST":
            respond(flow, _method_not_allowed())
            return
        policy = ctx.snapshot.policy
        form = self._form(flow)
        if form is None or not self._csrf_ok(flow, ctx, "logout", form):
            respond(flow, bad_request(ctx.request_id, as_json=ctx.as_json, what="csrf"))
            return
        insecure = policy.gateway.insecure
        session_id = get_cookie(flow, SESSION_COOKIE, insecure)
        account = None
        if session_id:
            lookup = await self.runtime.store.touch_session(session_id, self.runtime.now(), policy.session)
            account = lookup.session.account if lookup.session else None
            await self.runtime.store.delete_session(session_id)
        pending_id = get_cookie(flow, PENDING_COOKIE, insecure)
        if pending_id:  # signing out also ends a login half done in this browser (password given, no code yet)
            await self.runtime.store.delete_pending_login(pending_id)
        self._event(ctx, flow, "logout", "ok", account=account)
        page = login_pages.logged_out(policy.gateway.prefix)
        respond(flow, replace(page, headers=(*page.headers,
                                             ("Set-Cookie", clear_cookie(SESSION_COOKIE, insecure=insecure)),
                                             ("Set-Cookie", clear_cookie(PENDING_COOKIE, insecure=insecure)))))

    # -- leave (Art. 15) --------------------------------------------------------------------------
    def _leave(self, flow: http.HTTPFlow, ctx: RequestContext) -> None:
        result = leave_page(ctx.snapshot.policy, self.runtime.keys, flow.request.query)
        self._event(ctx, flow, "leave.view", "allow" if result.valid else "refuse", reason=result.reason,
                    article="Art. 15", extra={"destination_host": result.destination_host})
        respond(flow, result.page)
