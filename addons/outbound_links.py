"""Art. 15 on the way out: links and redirects to non-government sites go through the warning page.

Owns the response side of outbound-link warnings. ``responseheaders`` decides what is buffered:
only (X)HTML, or bodies a browser would sniff as HTML, up to ``MAX_REWRITE_BYTES``; everything
else streams through unbuffered. Too-large HTML streams too, and that is logged and audited as
"not rewritten", never silent. ``response`` rewrites the buffered HTML (``flow.response.content``
undoes and redoes gzip/deflate/br/zstd and keeps Content-Length right) and, with
``outbound.redirects: warn``, sends 3xx ``Location`` and ``Refresh`` headers to external hosts
through the leave page. Responses the gate made itself are never touched.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import ada_url
from mitmproxy import http

from govgate.core.audit_event import AuditEvent
from govgate.core.leave_link import leave_url
from govgate.core.link_rewrite import refresh_url, rewrite_html
from govgate.core.outbound import HostClassifier
from govgate.core.policy.model import Policy, RedirectMode
from govgate.runtime import Runtime

logger = logging.getLogger(__name__)

MAX_REWRITE_BYTES = 8 * 1024 * 1024
LOCAL_KEY = "govgate.local"  # set by the gate on responses it made itself
ARTICLE = "Art. 15"
_HOST_HEADER = re.compile(r"[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](?::[0-9]{1,5})?")
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_SNIFFED_TYPES = frozenset({"", "unknown/unknown", "application/unknown", "*/*"})
# WHATWG MIME sniffing: the tags that make an untyped body render as HTML.
_HTML_SIGNATURES = (
    b"<!doctype html", b"<html", b"<head", b"<script", b"<iframe", b"<h1", b"<div", b"<font", b"<table", b"<a",
    b"<style", b"<title", b"<b", b"<body", b"<br", b"<p", b"<!--",
)


def _mime(response: http.Response) -> str:
    return str(response.headers.get("content-type", "")).split(";", 1)[0].strip().lower()


def _sniffs_as_html(body: bytes) -> bool:
    head = body[:512].lstrip(b"\t\n\f\r ").lower()
    return any(head.startswith(sig) and len(head) > len(sig) and head[len(sig)] in b" >" for sig in _HTML_SIGNATURES)


class OutboundLinks:
    def __init__(self, runtime: Runtime, *, max_rewrite_bytes: int = MAX_REWRITE_BYTES) -> None:
        self.runtime = runtime
        self.max_rewrite_bytes = max_rewrite_bytes
        self._compiled: tuple[Policy, HostClassifier] | None = None

    # ------------------------------------------------------------------ helpers

    def _policy(self, flow: http.HTTPFlow) -> Policy:
        """The policy this request is judged by (the request context's snapshot), else the current one."""
        snapshot = getattr(flow.metadata.get("govgate"), "snapshot", None)
        policy = getattr(snapshot, "policy", None)
        return policy if isinstance(policy, Policy) else self.runtime.policy

    def _classifier(self, policy: Policy) -> HostClassifier:
        compiled = self._compiled
        if compiled is None or compiled[0] is not policy:  # recompiled once per policy (re)load
            compiled = (policy, HostClassifier.from_policy(policy))
            self._compiled = compiled
        return compiled[1]

    @staticmethod
    def _origin(flow: http.HTTPFlow, policy: Policy) -> str:
        """The origin the browser used (the gateway keeps the client's Host header)."""
        scheme = "http" if policy.gateway.insecure else "https"
        host = flow.request.host_header or ""
        if not _HOST_HEADER.fullmatch(host):  # a Host that is not a host[:port] never ends up in a link
            host = policy.gateway.public_hosts[0] if policy.gateway.public_hosts else "localhost"
        return f"{scheme}://{host}"

    def _urls(self, flow: http.HTTPFlow, policy: Policy) -> tuple[str, Callable[[str], str]]:
        """The document URL as the browser saw it, and the maker of absolute leave URLs on this origin."""
        origin = self._origin(flow, policy)
        prefix = policy.gateway.prefix
        keys = self.runtime.keys

        def make_leave_url(url: str) -> str:
            return origin + leave_url(prefix, url, keys)

        return origin + flow.request.path, make_leave_url

    def _audit(self, flow: http.HTTPFlow, event: str, decision: str, reason: str,
               **extra: str | int | bool | None) -> None:
        ctx = flow.metadata.get("govgate")
        client = getattr(ctx, "client", None)
        self.runtime.audit.emit(AuditEvent(
            event=event, time=self.runtime.now(), request_id=getattr(ctx, "request_id", None),
            client=str(client) if client is not None else None, method=flow.request.method,
            host=flow.request.host_header, path=flow.request.path.split("?", 1)[0], decision=decision,
            reason=reason, article=ARTICLE, extra=extra,
        ))

    def _not_rewritten(self, flow: http.HTTPFlow, reason: str, **extra: str | int | bool | None) -> None:
        # Issue 5 §6: a page that cannot be rewritten safely is said so in the log and the audit.
        ctx = flow.metadata.get("govgate")
        logger.warning("outbound.not_rewritten request_id=%s host=%s path=%s reason=%s",
                       getattr(ctx, "request_id", None), flow.request.host_header,
                       flow.request.path.split("?", 1)[0], reason)
        self._audit(flow, "outbound.not_rewritten", "pass", reason, **extra)

    # ------------------------------------------------------------------ hooks

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if response is None or flow.metadata.get(LOCAL_KEY):
            return
        policy = self._policy(flow)
        if policy.outbound.redirects is RedirectMode.WARN:
            document_url, make_leave_url = self._urls(flow, policy)
            self._redirects(flow, response, document_url, self._classifier(policy), make_leave_url)
        mime = _mime(response)
        if response.stream:
            # Another addon (e.g. mitmproxy's stream_large_bodies) already chose to stream this body.
            if mime in _HTML_TYPES:
                self._not_rewritten(flow, "streamed")
            return
        no_body = flow.request.method == "HEAD" or response.status_code in (204, 304) or response.status_code < 200
        if no_body or (mime not in _HTML_TYPES and mime not in _SNIFFED_TYPES):
            response.stream = True  # not HTML: passes through unbuffered
            return
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_rewrite_bytes:
            response.stream = True  # bounded memory: too large to buffer
            if mime in _HTML_TYPES:
                self._not_rewritten(flow, "too_large", content_length=int(length), limit=self.max_rewrite_bytes)

    def response(self, flow: http.HTTPFlow) -> None:
        # The rewrite runs on the event loop: it is CPU work (about 7 ms for a 750 KB page), not I/O, and
        # measured in a worker thread it cost a quarter of the throughput to GIL contention.
        self.rewrite_response(flow)

    def rewrite_response(self, flow: http.HTTPFlow) -> None:
        """Decode the body, rewrite off-site links, re-encode."""
        response = flow.response
        if response is None or flow.metadata.get(LOCAL_KEY) or response.stream:
            return
        policy = self._policy(flow)
        classifier = self._classifier(policy)
        document_url, make_leave_url = self._urls(flow, policy)
        mime = _mime(response)
        if mime not in _HTML_TYPES and mime not in _SNIFFED_TYPES:
            return
        try:
            body = response.content
        except ValueError as exc:  # a content-encoding that does not decode
            self._not_rewritten(flow, "undecodable", content_encoding=response.headers.get("content-encoding"))
            logger.debug("outbound.undecodable error=%s", exc)
            return
        if not body:
            return
        if mime in _SNIFFED_TYPES and not _sniffs_as_html(body):
            return
        # A body without Content-Length may have been buffered beyond the limit: it is in memory already,
        # so it is rewritten all the same.
        result = rewrite_html(body, content_type=response.headers.get("content-type"), document_url=document_url,
                              classifier=classifier, make_leave_url=make_leave_url)
        if result.rewritten:
            response.content = result.body  # re-encodes, fixes Content-Length
            logger.debug("outbound.rewritten links=%d rewritten=%d encoding=%s", result.links, result.rewritten,
                         result.encoding)

    def _redirects(self, flow: http.HTTPFlow, response: http.Response, document_url: str,
                   classifier: HostClassifier, make_leave_url: Callable[[str], str]) -> None:
        doc_host = flow.request.host_header or ""
        local = classifier.with_internal(doc_host) if doc_host else classifier

        def external(target: str) -> str | None:
            try:
                url = ada_url.URL(target.strip(), document_url)
            except ValueError:
                return None
            if not url.hostname or not local.is_external(url.hostname):
                return None
            return str(url.href)

        # Art. 15 (第十五条): an upstream redirect to a non-government site goes through the warning page.
        location = response.headers.get("location")
        if 300 <= response.status_code < 400 and location:
            href = external(location)
            if href is not None:
                response.headers["location"] = make_leave_url(href)
                self._audit(flow, "outbound.redirect", "warn", "external_redirect", destination_host=_host(href))
        refresh = response.headers.get("refresh")
        if refresh:
            parsed = refresh_url(refresh)
            if parsed is not None:
                href = external(parsed[1])
                if href is not None:
                    response.headers["refresh"] = f"{parsed[0] or '0'};url={make_leave_url(href)}"
                    self._audit(flow, "outbound.redirect", "warn", "external_refresh", destination_host=_host(href))


def _host(href: str) -> str:
    try:
        return str(ada_url.URL(href).hostname)
    except ValueError:
        return ""
