"""Art. 15 on the way out: links and redirects to non-government sites go through the warning page.

Owns the response side of outbound-link warnings. ``responseheaders`` decides what is buffered:
only (X)HTML, or bodies a browser would sniff as HTML, up to ``MAX_REWRITE_BYTES``; everything
else streams through unbuffered. Too-large HTML streams too, and that is logged and audited as
"not rewritten", never silent. ``response`` rewrites the buffered HTML (``flow.response.content``
undoes and redoes gzip/deflate/br/zstd and keeps Content-Length right) and, with
``outbound.redirects: warn``, sends 3xx ``Location`` and ``Refresh`` headers to external hosts
through the leave page. Responses the gate made itself are never touched.

Fail closed: an HTML page is never forwarded unrewritten because of a failure here. Whatever the
cause (a rewrite error or refusal, a Content-Encoding that does not decode, an XHTML document the
XML scan cannot vouch for), the client gets a short 502 page and the audit log an
``outbound.not_rewritten`` record (decision ``deny``). HTML without Content-Length is collected by
a bounded stream function of ours: past ``MAX_REWRITE_BYTES`` (or on failure) its body becomes that
short page. Only HTML announced as too large by its Content-Length, or streamed by another addon,
passes through, audited as before. Stacked codings (``gzip, br``) are undone and redone in turn.

Rewrite cache: the result of rewriting a page a shared cache could store is kept (bounded, per process) under a
digest of the body as received and all else the result depends on, so a page served again is not rewritten again;
failures are never kept (``govgate.core.rewrite_cache``; docs/outbound-links.md, "Cache"). For such a page that is
new, the scan of the last page at the same URL is kept too (bounded, per process), so a page that differs from it in
places (a date, a counter) is scanned only there (``govgate.core.scan_memo``; the result is the same).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import ada_url
from mitmproxy import http
from mitmproxy.net import encoding
from mitmproxy.proxy import layer
from mitmproxy.proxy.layers import http as http_layer

from govgate.addons.context import LOCAL_KEY, context_of, request_event, respond
from govgate.core import scan_memo
from govgate.core.audit_event import AuditDecision
from govgate.core.chromium_urls import chromium_reading
from govgate.core.hosts import split_host_port
from govgate.core.leave_link import LeaveLinks, leave_form_url
from govgate.core.link_rewrite import RewriteRefused, host_of_href, refresh_url, rewrite_html, rewrite_xhtml
from govgate.core.mime import content_type_essence
from govgate.core.outbound import HostClassifier
from govgate.core.policy.model import Policy, RedirectMode
from govgate.core.rewrite_cache import (
    DEFAULT_MAX_BYTES,
    CachedRewrite,
    RewriteCache,
    RewriteKey,
    rewrite_key,
    shared_cacheable,
)
from govgate.pages.refusal import not_rewritten
from govgate.runtime import Runtime

logger = logging.getLogger(__name__)

MAX_REWRITE_BYTES = 8 * 1024 * 1024
ARTICLE = "Art. 15"
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_XML_TYPES = frozenset({"text/xml", "application/xml"})  # and every "+xml" type: rendered as XML, SVG's links live
_NAVIGABLE = ("http:", "https:")  # the only destinations ever signed for the leave page
_SNIFFED_TYPES = frozenset({"", "unknown/unknown", "application/unknown", "*/*"})
# WHATWG MIME sniffing: the tags that make an untyped body render as HTML. Chromium takes each as a plain prefix
# (no space or ">" after it: "<pre", "<article", "<button" are HTML to it), after any of "\t\n\v\f\r ".
_HTML_SIGNATURES = (
    b"<!doctype html", b"<html", b"<head", b"<script", b"<iframe", b"<h1", b"<div", b"<font", b"<table", b"<a",
    b"<style", b"<title", b"<b", b"<body", b"<br", b"<p", b"<!--",
)
_SNIFF_SPACE = b"\t\n\x0b\f\r "


# The response headers this addon reads, found in one pass over the fields (``_read``).
_READ = frozenset({b"content-type", b"content-length", b"content-encoding", b"transfer-encoding", b"location",
                   b"refresh", b"cache-control", b"set-cookie"})


def _read(response: http.Response) -> dict[bytes, str]:
    """The values of the ``_READ`` headers by lower-case name, as ``Headers.get`` gives them (several fields of one
    name joined by ", "), in one pass over the fields instead of one per header."""
    found: dict[bytes, str] = {}
    for name, value in response.headers.fields:
        key = name.lower()
        if key in _READ:
            text = value.decode("utf-8", "surrogateescape")
            found[key] = f"{found[key]}, {text}" if key in found else text
    return found


@functools.lru_cache(maxsize=256)
def _mime(content_type: str) -> str:
    """The essence a browser takes from ``content_type`` (Fetch, "extract a MIME type"): "" when there is none.
    Memoised: a site sends a handful of distinct values, and this runs for every response."""
    return content_type_essence(content_type)


class _Undecodable(ValueError):
    """A Content-Encoding this addon cannot undo (and so cannot redo after rewriting)."""


def _codings(raw: str) -> list[str]:
    """The codings of a Content-Encoding value in the order they were applied (``identity`` dropped)."""
    return [c for c in (part.strip().lower() for part in raw.split(",")) if c and c != "identity"]


def _decode(raw: bytes, codings: list[str]) -> bytes:
    for coding in reversed(codings):  # the last one listed was applied last: undone first
        if coding not in ("gzip", "x-gzip", "deflate", "br", "zstd"):
            raise _Undecodable(coding)
        try:
            out = encoding.decode(raw, "gzip" if coding == "x-gzip" else coding)
        except ValueError as exc:
            raise _Undecodable(coding) from exc
        if not isinstance(out, bytes):
            raise _Undecodable(coding)
        raw = out
    return raw


def _encode(body: bytes, codings: list[str]) -> bytes:
    for coding in codings:
        out = encoding.encode(body, "gzip" if coding == "x-gzip" else coding)
        if not isinstance(out, bytes):
            raise _Undecodable(coding)
        body = out
    return body


def _sniffs_as_html(body: bytes) -> bool:
    """Whether a browser may render an untyped ``body`` as HTML (or as XML: ``<?xml``); Chromium's prefixes."""
    head = body[:512].lstrip(_SNIFF_SPACE).lower()
    return head.startswith(b"<?xml") or any(head.startswith(sig) for sig in _HTML_SIGNATURES)


def _sniffs_as_xml(body: bytes) -> bool:
    return body[:512].lstrip(_SNIFF_SPACE).startswith(b"<?xml")


def _is_xml(mime: str) -> bool:
    """XHTML, SVG, RSS... and plain XML: a browser renders them as XML documents, whose links are live."""
    return mime in _XML_TYPES or mime.endswith("+xml")


def _rewritable(mime: str) -> bool:
    return mime in _HTML_TYPES or _is_xml(mime)


def _stream_large_responses_instead_of_refusing_them() -> None:
    """mitmproxy refuses a response whose ``Content-Length`` is over ``body_size_limit`` (the limit that bounds
    the request bodies it buffers) before any addon may choose to stream it: a portal's 80 MB download became
    the gate's "Portal unreachable" 502, logged nowhere (found in review). Every response body here is bounded
    already: streamed unless it is a page to rewrite of at most ``max_rewrite_bytes`` (``responseheaders``). So
    only the early check of a response's declared length is skipped; a body buffered after all is still bounded."""
    stream_class = http_layer.HttpStream
    original = stream_class.check_body_size
    if getattr(original, "_govgate_requests_only", False):
        return

    def check_body_size(self: http_layer.HttpStream, request: bool) -> layer.CommandGenerator[bool]:
        if not request and not self.response_body_buf:
            return False  # a response's declared length, before any addon chose how to pass it on
        # Requests; and a response body being buffered after all (a page refused in its place, say): still bounded.
        return (yield from original(self, request))

    check_body_size._govgate_requests_only = True  # type: ignore[attr-defined]
    stream_class.check_body_size = check_body_size  # type: ignore[method-assign]


class OutboundLinks:
    def __init__(self, runtime: Runtime, *, max_rewrite_bytes: int = MAX_REWRITE_BYTES,
                 cache_bytes: int = DEFAULT_MAX_BYTES, scan_memo_bytes: int = scan_memo.DEFAULT_MAX_BYTES) -> None:
        _stream_large_responses_instead_of_refusing_them()
        self.runtime = runtime
        self.max_rewrite_bytes = max_rewrite_bytes
        self._compiled: tuple[Policy, HostClassifier] | None = None
        self._last_origin: tuple[http.HTTPFlow, Policy, str] | None = None  # the links and the forms of one page
        # Rewrite results of pages a shared cache could store, by a digest of all they depend on (0: none kept).
        self.cache = RewriteCache(cache_bytes) if cache_bytes > 0 else None
        # The scan of the last such page per URL, for the next one that differs from it only in places (0: none).
        self.scan_memo = scan_memo.ScanMemo(scan_memo_bytes) if scan_memo_bytes > 0 else None

    # ------------------------------------------------------------------ helpers

    def _policy(self, flow: http.HTTPFlow) -> Policy:
        """The policy this request is judged by (the request context's snapshot), else the current one."""
        ctx = context_of(flow)
        return ctx.snapshot.policy if ctx is not None else self.runtime.policy

    def _classifier(self, policy: Policy) -> HostClassifier:
        compiled = self._compiled
        if compiled is None or compiled[0] is not policy:  # recompiled once per policy (re)load
            compiled = (policy, HostClassifier.from_policy(policy))
            self._compiled = compiled
        return compiled[1]

    def _origin(self, flow: http.HTTPFlow, policy: Policy) -> str:
        """The origin the browser used (the gateway keeps the client's Host header), if it is one of
        ``public_hosts``: a Host the client made up never ends up in a link (a cache that ignores Host
        would otherwise serve its leave links to everyone), nor counts as an internal host."""
        last = self._last_origin
        if last is not None and last[0] is flow and last[1] is policy:
            return last[2]  # asked again for the same response (its leave links, then its forms)
        origin = self._find_origin(flow, policy)
        self._last_origin = (flow, policy, origin)
        return origin

    @staticmethod
    def _find_origin(flow: http.HTTPFlow, policy: Policy) -> str:
        scheme = "http" if policy.gateway.insecure else "https"
        sent = (flow.request.host_header or "").strip()
        authority = split_host_port(sent) if sent.isascii() else None
        if authority is None or authority[0] not in policy.gateway.public_hosts:
            return f"{scheme}://{policy.gateway.public_hosts[0] if policy.gateway.public_hosts else 'localhost'}"
        # A public host, kept as the browser spelled it (ASCII that reads as a public host: nothing odd).
        port = authority[1]
        spelled = sent[:sent.rindex(":")] if port is not None or sent.endswith(":") else sent
        if port is None or port != flow.client_conn.sockname[1]:
            return f"{scheme}://{spelled}"  # a port other than the one the client reached us on is not kept
        return f"{scheme}://{spelled}:{port}"

    def _urls(self, flow: http.HTTPFlow, policy: Policy) -> tuple[str, Callable[[str], str]]:
        """The document URL as the browser saw it, and the maker of absolute leave URLs on this origin."""
        origin = self._origin(flow, policy)
        return origin + flow.request.path, LeaveLinks(origin, policy.gateway.prefix, self.runtime.keys)

    def _form_urls(self, flow: http.HTTPFlow, policy: Policy) -> Callable[[str, str], str]:
        """The maker of absolute form targets on this origin: a form leaving the site is submitted to the warning
        page, which passes its fields on (a GET form's query is the browser's own; ``docs/pages.md``)."""
        origin = self._origin(flow, policy)
        prefix = policy.gateway.prefix
        keys = self.runtime.keys

        def make_form_url(url: str, charset: str) -> str:
            return origin + leave_form_url(prefix, url, charset, keys)

        return make_form_url

    def _audit(self, flow: http.HTTPFlow, event: str, decision: AuditDecision, reason: str,
               **extra: str | int | bool | None) -> None:
        self.runtime.audit.emit(request_event(context_of(flow), flow, event, decision, time=self.runtime.now(),
                                              reason=reason, article=ARTICLE, extra=extra))

    @staticmethod
    def _request_id(flow: http.HTTPFlow) -> str | None:
        ctx = context_of(flow)
        return ctx.request_id if ctx is not None else None

    def _not_rewritten(self, flow: http.HTTPFlow, reason: str, **extra: str | int | bool | None) -> None:
        # A page that cannot be rewritten safely is said so in the log and the audit (docs/outbound-links.md).
        logger.warning("outbound.not_rewritten request_id=%s host=%s path=%s reason=%s", self._request_id(flow),
                       flow.request.host_header, flow.request.path.split("?", 1)[0], reason)
        self._audit(flow, "outbound.not_rewritten", AuditDecision.PASSED, reason, **extra)

    # ------------------------------------------------------------------ hooks

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if response is None or flow.metadata.get(LOCAL_KEY):
            return
        policy = self._policy(flow)
        read = _read(response)
        if policy.outbound.redirects is RedirectMode.WARN and (
                b"refresh" in read or (b"location" in read and 300 <= response.status_code < 400)):
            # Only a response that could redirect is looked at (the others cost no URL parse).
            try:
                document_url, make_leave_url = self._urls(flow, policy)
                self._redirects(flow, response, document_url, self._classifier(policy), make_leave_url)
            except Exception as exc:  # fail closed: an external redirect never goes out unwarned
                reason, extra = self._failure(flow, response, exc)
                self._fail_closed(flow, reason, **extra)
                return
            finally:
                self._last_origin = None
        mime = _mime(read.get(b"content-type", ""))
        if response.stream:
            # Another addon (e.g. mitmproxy's stream_large_bodies) already chose to stream this body.
            if _rewritable(mime):
                self._not_rewritten(flow, "streamed")
            return
        no_body = flow.request.method == "HEAD" or response.status_code in (204, 304) or response.status_code < 200
        if no_body or (not _rewritable(mime) and mime not in _SNIFFED_TYPES):
            response.stream = True  # not HTML: passes through unbuffered
            return
        length = read.get(b"content-length", "")
        if length.isdigit() and int(length) > self.max_rewrite_bytes:
            response.stream = True  # bounded memory: too large to buffer
            if _rewritable(mime):
                self._not_rewritten(flow, "too_large", content_length=int(length), limit=self.max_rewrite_bytes)
        elif not length.isdigit():
            # No (usable) Content-Length (chunked, HTTP/2, close-delimited): collected by our own stream
            # function, which holds at most max_rewrite_bytes and fails closed beyond.
            response.stream = self._collector(flow, response)

    def response(self, flow: http.HTTPFlow) -> None:
        # The rewrite runs on the event loop: it is CPU work (about 7 ms for a 750 KB page), not I/O, and
        # measured in a worker thread it cost a quarter of the throughput to GIL contention. A page served
        # again unchanged is answered from the rewrite cache instead (docs/outbound-links.md, "Cache").
        self.rewrite_response(flow)

    def rewrite_response(self, flow: http.HTTPFlow) -> None:
        """Decode the body, rewrite off-site links, re-encode; on any failure answer 502 (fail closed)."""
        response = flow.response
        if response is None or flow.metadata.get(LOCAL_KEY) or response.stream:
            return
        raw = response.raw_content
        if not raw:
            return
        read = _read(response)
        if b"content-length" not in read and len(raw) > self.max_rewrite_bytes:
            # Backstop (responseheaders collects such bodies itself, bounded): refused, not forwarded.
            self._fail_closed(flow, "too_large", limit=self.max_rewrite_bytes)
            return
        try:
            new = self._transform(flow, response, raw, read)
        except Exception as exc:  # fail closed: never forward a page that was not rewritten
            reason, extra = self._failure(flow, response, exc)
            self._fail_closed(flow, reason, **extra)
            return
        if new is not None:
            response.raw_content = new
            if b"transfer-encoding" not in read:
                response.headers["content-length"] = str(len(new))

    def _failure(self, flow: http.HTTPFlow, response: http.Response, exc: Exception) -> tuple[str, dict[str, str]]:
        """(audit reason, extra audit fields) for a failed rewrite."""
        if isinstance(exc, RewriteRefused):
            return exc.reason.value, {}
        if isinstance(exc, _Undecodable):
            logger.debug("outbound.undecodable coding=%s", exc)
            return "undecodable", {"content_encoding": response.headers.get("content-encoding", "")}
        logger.error("outbound.rewrite_error request_id=%s", self._request_id(flow), exc_info=exc)
        return "error", {}

    @staticmethod
    def _shareable(flow: http.HTTPFlow, read: dict[bytes, str]) -> bool:
        """Whether anything of this response may be kept for another (``shared_cacheable``: not private/no-store,
        Set-Cookie, a request with Authorization, a staff path; ``docs/outbound-links.md``, "Cache")."""
        sent = {name.lower() for name, _ in flow.request.headers.fields}  # one pass over the request's fields
        # X-GovGate-User is set by the gate on every forwarded staff request (a client's own is always stripped).
        return shared_cacheable(cache_control=read.get(b"cache-control", ""), set_cookie=b"set-cookie" in read,
                                authorization=b"authorization" in sent, staff=b"x-govgate-user" in sent)

    def _cache_key(self, read: dict[bytes, str], document_url: str, policy: Policy,
                   shareable: bool) -> RewriteKey | None:
        """The rewrite cache's key for this response, or None when its result must not be kept."""
        cache = self.cache
        if cache is None or not shareable:
            return None
        cache.bind(policy, self.runtime.keys)  # emptied when the policy (reload) or the keys change
        return rewrite_key(content_type=read.get(b"content-type", "\0none"),
                           content_encoding=read.get(b"content-encoding", ""), document_url=document_url,
                           prefix=policy.gateway.prefix)

    def _transform(self, flow: http.HTTPFlow, response: http.Response, raw: bytes,
                   read: dict[bytes, str]) -> bytes | None:
        """The rewritten raw body (codings redone), or None when nothing changes; raises when it cannot say."""
        content_type = read.get(b"content-type")
        mime = _mime(content_type or "")
        if not _rewritable(mime) and mime not in _SNIFFED_TYPES:
            return None
        policy = self._policy(flow)
        try:
            document_url, make_leave_url = self._urls(flow, policy)
            shareable = self._shareable(flow, read)
            key = self._cache_key(read, document_url, policy, shareable)
            if key is not None and self.cache is not None:
                hit = self.cache.get(key, raw)
                if hit is not None:
                    if hit.rewritten:
                        logger.debug("outbound.rewritten links=%d rewritten=%d encoding=%s cached=true", hit.links,
                                     hit.rewritten, hit.encoding)
                    return hit.body
            codings = _codings(read.get(b"content-encoding", ""))
            body = _decode(raw, codings) if codings else raw
            out: bytes | None = None
            if _rewritable(mime) or _sniffs_as_html(body):
                # XHTML, SVG and other XML (also an untyped body that starts "<?xml") are parsed as XML by browsers:
                # scanned by XML rules (rewrite_xhtml refuses what it cannot vouch for).
                if _is_xml(mime) or (mime in _SNIFFED_TYPES and _sniffs_as_xml(body)):
                    result = rewrite_xhtml(body, content_type=content_type, document_url=document_url,
                                           classifier=self._classifier(policy), make_leave_url=make_leave_url,
                                           make_form_url=self._form_urls(flow, policy))
                else:
                    # Only pages a shared cache could store (a key) are kept for the next page's scan: nothing of
                    # one account's page is kept, nor compared with another's.
                    memo = self.scan_memo if shareable else None
                    result = rewrite_html(body, content_type=content_type, document_url=document_url,
                                          classifier=self._classifier(policy), make_leave_url=make_leave_url,
                                          make_form_url=self._form_urls(flow, policy), scan_memo=memo,
                                          scan_key=document_url,
                                          # what the leave and form links are made from (``_urls``, ``_form_urls``)
                                          link_setting=(policy, self.runtime.keys, self._origin(flow, policy)))
                if result.rewritten:
                    logger.debug("outbound.rewritten links=%d rewritten=%d encoding=%s", result.links, result.rewritten,
                                 result.encoding)
                    out = _encode(result.body, codings) if codings else result.body
                entry = CachedRewrite(raw, out, result.links, result.rewritten, result.encoding)
            else:
                entry = CachedRewrite(raw, None, 0, 0, "")
            if key is not None and self.cache is not None:
                self.cache.put(key, entry)
            return out
        finally:
            self._last_origin = None  # the response (and its body) is not held on to

    def _collector(self, flow: http.HTTPFlow, response: http.Response) -> Callable[[bytes], list[bytes]]:
        """A ``response.stream`` function for HTML without Content-Length: memory bounded by the limit.

        mitmproxy calls it for each chunk and with ``b""`` at the end. Chunks are held back (nothing is
        sent) up to ``max_rewrite_bytes``; at the end the whole body is rewritten and sent. Past the
        limit the chunks are dropped at once and, the status line being sent already, the body becomes
        the short "not shown" page (fail closed: no unrewritten byte reaches the client).
        """
        chunks: list[bytes] = []
        size = 0
        over = False

        def collect(data: bytes) -> list[bytes]:
            nonlocal size, over
            if data:
                if not over:
                    size += len(data)
                    if size > self.max_rewrite_bytes:
                        over = True
                        chunks.clear()
                    else:
                        chunks.append(data)
                return []  # held back (an empty chunk would end a chunked HTTP/1 body)
            if over:
                self._deny(flow, "too_large", limit=self.max_rewrite_bytes)
                return [self._notice_body(response)]
            raw = b"".join(chunks)
            chunks.clear()
            if not raw:
                return []
            try:
                new = self._transform(flow, response, raw, _read(response))
            except Exception as exc:  # fail closed, as in rewrite_response
                reason, extra = self._failure(flow, response, exc)
                self._deny(flow, reason, **extra)
                return [self._notice_body(response)]
            return [raw if new is None else new]

        return collect

    def _notice_body(self, response: http.Response) -> bytes:
        """The refusal page's body, in the codings the response headers already announced (else empty)."""
        body = not_rewritten().body
        try:
            codings = _codings(response.headers.get("content-encoding", ""))
            return _encode(body, codings) if codings else body
        except (_Undecodable, ValueError):
            return b""

    def _deny(self, flow: http.HTTPFlow, reason: str, **extra: str | int | bool | None) -> None:
        logger.warning("outbound.not_rewritten request_id=%s host=%s path=%s reason=%s decision=deny",
                       self._request_id(flow), flow.request.host_header, flow.request.path.split("?", 1)[0], reason)
        self._audit(flow, "outbound.not_rewritten", AuditDecision.DENY, reason, **extra)

    def _fail_closed(self, flow: http.HTTPFlow, reason: str, **extra: str | int | bool | None) -> None:
        """502 instead of a page that could not be rewritten: Art. 15 links are never let through unwarned."""
        self._deny(flow, reason, **extra)
        respond(flow, not_rewritten())

    def _redirects(self, flow: http.HTTPFlow, response: http.Response, document_url: str,
                   classifier: HostClassifier, make_leave_url: Callable[[str], str]) -> None:
        doc_host = ada_url.URL(document_url).hostname  # the origin's host: a public host, never a made-up one
        local = classifier.with_internal(doc_host) if doc_host else classifier

        def external(target: str) -> str | None:
            try:
                url = ada_url.URL(target.strip(), document_url)
            except ValueError:
                # Rejected by the spec, yet Chromium may follow it (a host holding U+FF05): read it as Chromium.
                reading = chromium_reading(target.strip(), document_url[:document_url.find(":")])
                if reading is None:
                    return None
                try:
                    url = ada_url.URL(reading, document_url)
                except ValueError:
                    return None
            # Only http(s) is signed: a redirect to javascript:/data: is not followed by browsers and is
            # left as it is; the leave page never gets to render such a destination.
            if url.protocol not in _NAVIGABLE or not url.hostname or not local.is_external(url.hostname):
                return None
            return str(url.href)

        # Art. 15 (第十五条): an upstream redirect to a non-government site goes through the warning page.
        location = response.headers.get("location")
        if 300 <= response.status_code < 400 and location:
            href = external(location)
            if href is not None:
                response.headers["location"] = make_leave_url(href)
                self._audit(flow, "outbound.redirect", AuditDecision.WARN, "external_redirect",
                            destination_host=host_of_href(href))
        refresh = response.headers.get("refresh")
        if refresh:
            parsed = refresh_url(refresh)
            if parsed is not None:
                href = external(parsed[1])
                if href is not None:
                    response.headers["refresh"] = f"{parsed[0] or '0'};url={make_leave_url(href)}"
                    self._audit(flow, "outbound.redirect", AuditDecision.WARN, "external_refresh",
                                destination_host=host_of_href(href))

