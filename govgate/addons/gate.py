"""The access gate: every request outside the gate's own pages is judged by ``decide`` (``docs/decisions.md``).

Glue only: it turns the flow and the session into ``RequestFacts``, calls the pure core, and applies
the ``Decision`` (forward with identity headers, 403 page, or 303 to login), auditing each decision.
Anything unexpected fails closed: the state store down → 503 on staff paths (public paths go on),
audit log unwritable → 503 on staff paths when ``audit.on_failure`` is ``deny`` (Art. 20).
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from mitmproxy import http

from govgate.addons.context import (
    CookiePairs,
    RequestContext,
    context_of,
    gate_cookie,
    redirect,
    request_cookies,
    request_event,
    respond,
    strip_gate_cookies,
)
from govgate.cookies import GateCookie, clear_cookie
from govgate.core import device_cookie
from govgate.core.audit_event import AuditDecision, AuditValue
from govgate.core.decide import (
    AccountFacts,
    Decision,
    Outcome,
    Reason,
    RequestFacts,
    RuleMatch,
    decide,
    match_rule,
)
from govgate.core.devices import device_for_cert_sha256, device_for_token
from govgate.core.keys import GatewayKeys
from govgate.core.policy.model import AccessRule, Allow, AuditOnFailure
from govgate.core.sessions import SessionEnd
from govgate.errors import StoreUnavailable
from govgate.pages.refusal import forbidden, unavailable
from govgate.repeated import REPEATED
from govgate.runtime import PolicySnapshot, Runtime
from govgate.store.base import Session, SessionLookup

logger = logging.getLogger(__name__)

_NO_SESSION = SessionLookup(session=None, expired=False, account_locked_until=None)


def account_facts(snapshot: PolicySnapshot, name: str, locked_until: datetime | None) -> AccountFacts:
    account = snapshot.accounts.get(name)
    owned = snapshot.compiled.devices.owned_by(name)
    if account is None:
        # Deleted from the accounts file while a session was open: treat as disabled.
        return AccountFacts(name=name, groups=frozenset(), disabled=True, expires=None,
                            locked_until=locked_until, devices=owned)
    return AccountFacts(name=name, groups=frozenset(account.groups), disabled=account.disabled,
                        expires=account.expires, locked_until=locked_until, devices=owned)


def device_of(ctx: RequestContext, flow: http.HTTPFlow, keys: GatewayKeys, now: datetime,
              cookies: CookiePairs | None = None) -> str | None:
    """The allowlisted device this request comes from: client certificate first, then the enrolled cookie.
    ``cookies``: the request's cookies as ``request_cookies`` read them (else read here)."""
    compiled = ctx.snapshot.compiled
    # Art. 30: a certificate identifies a device only while valid and, when a CA is in use, chained to it;
    # revoked devices are not in the index at all.
    if ctx.device_cert is not None and ctx.device_cert.usable(now):
        device = device_for_cert_sha256(compiled.devices, ctx.device_cert.sha256, now)
        if device is not None:
            return device.id
    cookie = gate_cookie(flow, ctx, GateCookie.DEVICE, cookies)
    presented = device_cookie.token_of(keys, cookie) if cookie else None
    if presented is not None:
        device = device_for_token(compiled.devices, presented.token, now, signed=presented.signed)
        if device is not None:
            return device.id
    return None


# The identity headers the gate sends the portal (Art. 30: who is asking, from which device); the context addon has
# removed every client-sent header of these names (and any other ``X-GovGate-*``) before the gate runs.
IDENTITY_HEADERS = frozenset({b"x-govgate-user", b"x-govgate-groups", b"x-govgate-device"})


def forward_headers(request: http.Request, cookies: CookiePairs, account: AccountFacts | None,
                    device: str | None) -> None:
    """What a forwarded request carries to the portal: none of the gate's cookies, and the gate's word on the
    account (``X-GovGate-User``, ``X-GovGate-Groups``) and the device (``X-GovGate-Device``). Each identity header is
    set as ``headers[name] = value`` sets it (any field of its name replaced), in the same one rebuild of the fields
    as the cookies' stripping."""
    added: tuple[tuple[bytes, bytes], ...] = ()
    if account is not None:
        added = ((b"X-GovGate-User", account.name.encode("utf-8", "surrogateescape")),
                 (b"X-GovGate-Groups", ",".join(sorted(account.groups)).encode("utf-8", "surrogateescape")))
    if device is not None:
        added = (*added, (b"X-GovGate-Device", device.encode("utf-8", "surrogateescape")))
    strip_gate_cookies(request, cookies, added)


@dataclass(frozen=True, slots=True)
class _StaffPath:
    """What ``_judge`` found for a staff path (the rule, matched once), for the rest of it after the session lookup."""

    now: datetime
    matched: RuleMatch  # its rule is a staff rule
    cookies: CookiePairs

    @property
    def rule(self) -> AccessRule:
        rule = self.matched.rule
        if rule is None:  # never: ``_judge`` returns a staff path only for a staff rule (fails closed if it did)
            raise RuntimeError("a staff path without a rule")
        return rule


class Gate:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        """Decide, and forward, answer or refuse. Synchronous unless a staff path's session lookup must wait for
        the store (or a session must be deleted): then the rest of the decision is returned as a coroutine
        (mitmproxy awaits what a hook returns), so that every other request is answered without a task of its own
        (govgate/dispatch.py)."""
        if flow.response or flow.error or not flow.live:
            return None
        ctx = context_of(flow)
        if ctx is None:  # the context addon always runs first; if not, fail closed
            respond(flow, forbidden("denied", "-", as_json=False))
            return None
        try:
            staff = self._judge(flow, ctx)
        except Exception as exc:
            self._failed(flow, ctx, exc)
            return None
        return None if staff is None else self._judge_staff(flow, ctx, staff)

    def _failed(self, flow: http.HTTPFlow, ctx: RequestContext, exc: Exception) -> None:
        if isinstance(exc, StoreUnavailable):
            REPEATED.warning(logger, "store.unavailable", "store.unavailable request_id=%s error=%s", ctx.request_id,
                             exc)
            self._audit(ctx, flow, None, AuditDecision.UNAVAILABLE, reason="store", account=None, device=None)
            respond(flow, unavailable(ctx.request_id, "store", as_json=ctx.as_json))
        else:
            # Fail closed (403), never a traceback page; the log has the details.
            logger.error("gate.error request_id=%s", ctx.request_id, exc_info=exc)
            respond(flow, forbidden("denied", ctx.request_id, as_json=ctx.as_json))

    def _judge(self, flow: http.HTTPFlow, ctx: RequestContext) -> _StaffPath | None:
        """The rule for the request; unless it is a staff rule, the decision (no account or device needed) is
        applied here, else the match is returned for ``_judge_staff`` to decide with once the session is known."""
        now = self.runtime.now()
        request = flow.request
        path, method = request.path, request.method
        matched = match_rule(ctx.snapshot.compiled, ctx.host, path, method)  # step 1, once for both decisions
        rule = matched.rule
        cookies = request_cookies(request)  # read once for the session, the device and the stripping
        if rule is not None and rule.allow is Allow.STAFF:
            return _StaffPath(now, matched, cookies)
        facts = RequestFacts(client=ctx.client, country=ctx.country, host=ctx.host, path=path, method=method,
                             device=None, account=None)
        self._apply(flow, ctx, decide(facts, ctx.snapshot.compiled, now, matched), facts, cookies)
        return None

    def _judge_staff(self, flow: http.HTTPFlow, ctx: RequestContext, staff: _StaffPath) -> Awaitable[None] | None:
        """The staff decision: done here when the store answers the session lookup without I/O (the memory store;
        Redis's near cache) and no session must be deleted; else the rest is returned as a coroutine."""
        try:
            return self._judge_session(flow, ctx, staff)
        except Exception as exc:
            self._failed(flow, ctx, exc)
            return None

    def _judge_session(self, flow: http.HTTPFlow, ctx: RequestContext, staff: _StaffPath) -> Awaitable[None] | None:
        policy = ctx.snapshot.policy
        # Staff path: the audit log must be writable before we let anyone in (Art. 20).
        if policy.audit.on_failure is AuditOnFailure.DENY and not self.runtime.audit_writer.healthy:
            self._audit(ctx, flow, staff.rule.name, AuditDecision.UNAVAILABLE, reason="audit", account=None,
                        device=None)
            respond(flow, unavailable(ctx.request_id, "audit", as_json=ctx.as_json))
            return None
        device = device_of(ctx, flow, self.runtime.keys, staff.now, staff.cookies)
        session_id = gate_cookie(flow, ctx, GateCookie.SESSION, staff.cookies)
        if not session_id:
            return self._conclude(flow, ctx, staff, device, None, _NO_SESSION)
        lookup = self.runtime.store.touch_session_now(session_id, staff.now, policy.session)
        if lookup is None:
            return self._look_up(flow, ctx, staff, device, session_id)
        return self._conclude(flow, ctx, staff, device, session_id, lookup)

    async def _look_up(self, flow: http.HTTPFlow, ctx: RequestContext, staff: _StaffPath, device: str | None,
                       session_id: str) -> None:
        """The session lookup that waits for the store, then the decision."""
        try:
            lookup = await self.runtime.store.touch_session(session_id, staff.now, ctx.snapshot.policy.session)
            rest = self._conclude(flow, ctx, staff, device, session_id, lookup)
            if rest is not None:
                await rest
        except Exception as exc:
            self._failed(flow, ctx, exc)

    def _conclude(self, flow: http.HTTPFlow, ctx: RequestContext, staff: _StaffPath, device: str | None,
                  session_id: str | None, lookup: SessionLookup) -> Awaitable[None] | None:
        """Decide with the session looked up; a session that must end is deleted first (a coroutine), and the
        request is answered only after the store has done so."""
        snapshot = ctx.snapshot
        opened = lookup.session
        account: AccountFacts | None = None
        if opened is not None:
            owner = snapshot.accounts.get(opened.account)
            if owner is not None and owner.session_revoked(opened.created):
                # `govgate account logout` ended every session opened before it (Art. 30).
                return self._end_session(flow, ctx, staff, device, session_id, opened, SessionEnd.REVOKED)
            if opened.device is not None and device != opened.device:
                # Art. 30 (第三十条, 账号与设备绑定): a session opened on a device is used on that device only. Its id
                # from another device, or with none, is someone else's use of it: the session ends (login again).
                return self._end_session(flow, ctx, staff, device, session_id, opened, SessionEnd.DEVICE)
            account = account_facts(snapshot, opened.account, lookup.account_locked_until)
        request = flow.request
        facts = RequestFacts(
            client=ctx.client, country=ctx.country, host=ctx.host, path=request.path, method=request.method,
            device=device, account=account,
        )
        decision = decide(facts, snapshot.compiled, staff.now, staff.matched)
        clear = lookup.expired or (session_id is not None and opened is None)
        if decision.outcome is Outcome.REFUSE and decision.reason is Reason.ACCOUNT and opened is not None:
            # A disabled, expired or deleted account loses its session (Art. 25, Art. 30).
            return self._delete_then_apply(flow, ctx, staff, device, opened.id, lookup, decision, facts)
        self._answer(flow, ctx, staff, device, lookup, decision, facts, clear)
        return None

    async def _end_session(self, flow: http.HTTPFlow, ctx: RequestContext, staff: _StaffPath, device: str | None,
                           session_id: str | None, opened: Session, why: SessionEnd) -> None:
        try:
            await self.runtime.store.delete_session(opened.id)
            ended = SessionLookup(session=None, expired=True, account_locked_until=None,
                                  expired_account=opened.account, expired_why=why)
            self._conclude(flow, ctx, staff, device, session_id, ended)  # no session now: nothing to await
        except Exception as exc:
            self._failed(flow, ctx, exc)

    async def _delete_then_apply(self, flow: http.HTTPFlow, ctx: RequestContext, staff: _StaffPath,
                                 device: str | None, session_id: str, lookup: SessionLookup, decision: Decision,
                                 facts: RequestFacts) -> None:
        try:
            await self.runtime.store.delete_session(session_id)
            self._answer(flow, ctx, staff, device, lookup, decision, facts, True)
        except Exception as exc:
            self._failed(flow, ctx, exc)

    def _answer(self, flow: http.HTTPFlow, ctx: RequestContext, staff: _StaffPath, device: str | None,
                lookup: SessionLookup, decision: Decision, facts: RequestFacts, clear: bool) -> None:
        if lookup.expired:
            # Art. 30 (第三十条, 超时退出): the record says which timeout ended it (idle or absolute), or a revocation.
            why = lookup.expired_why or SessionEnd.IDLE
            self.runtime.audit.emit(request_event(
                ctx, flow, "session.expired", AuditDecision.LOGIN, time=self.runtime.now(), rule=staff.rule.name,
                reason=why.value, account=lookup.expired_account, device=device, article="Art. 30"))
        self._apply(flow, ctx, decision, facts, staff.cookies, clear_session=clear)

    def _apply(self, flow: http.HTTPFlow, ctx: RequestContext, decision: Decision, facts: RequestFacts,
               cookies: CookiePairs, *, clear_session: bool = False) -> None:
        policy = ctx.snapshot.policy
        rule_name = decision.rule.name if decision.rule else None
        account = facts.account.name if facts.account else None
        insecure = policy.gateway.insecure
        if decision.outcome is Outcome.FORWARD:
            forward_headers(flow.request, cookies, facts.account, facts.device)
            # Art. 19 (第十九条): an access from abroad names the overseas grant that admitted it.
            grant = decision.grant
            extra: dict[str, AuditValue] = {} if grant is None else {
                "grant": {"index": grant.index, "reason": grant.reason}}
            self._audit(ctx, flow, rule_name, AuditDecision.ALLOW, reason=None, account=account, device=facts.device,
                        article=decision.article, extra=extra)
            return
        if decision.outcome is Outcome.LOGIN:
            target = f"{policy.gateway.prefix}/login?next=" + urllib.parse.quote(flow.request.path, safe="/")
            cleared = (("Set-Cookie", clear_cookie(GateCookie.SESSION, insecure=insecure)),) if clear_session else ()
            redirect(flow, target, headers=cleared)
            self._audit(ctx, flow, rule_name, AuditDecision.LOGIN, reason="session", account=None, device=facts.device,
                        article=decision.article)
            return
        reason = decision.reason.value if decision.reason is not None else "denied"
        page = forbidden(reason, ctx.request_id, as_json=ctx.as_json)
        if clear_session:
            clear_header: tuple[str, str] = ("Set-Cookie", clear_cookie(GateCookie.SESSION, insecure=insecure))
            page = replace(page, headers=(*page.headers, clear_header))
        respond(flow, page)
        self._audit(ctx, flow, rule_name, AuditDecision.REFUSE, reason=reason, account=account, device=facts.device,
                    article=decision.article)

    def _audit(self, ctx: RequestContext, flow: http.HTTPFlow, rule: str | None, decision: AuditDecision, *,
               reason: str | None, account: str | None, device: str | None, article: str | None = None,
               extra: Mapping[str, AuditValue] | None = None) -> None:
        self.runtime.audit.emit(request_event(ctx, flow, "access", decision, time=self.runtime.now(), rule=rule,
                                              reason=reason, account=account, device=device, article=article,
                                              extra=extra))
