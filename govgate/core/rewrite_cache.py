"""A bounded cache of Art. 15 rewrite results, so that a page served again and again (a portal's front page) is
rewritten once per process rather than once per response (``docs/outbound-links.md``, "Cache").

Pure: no I/O, no mitmproxy. The addon (``govgate.addons.outbound_links``) decides what may be cached
(``shared_cacheable``), makes the key (``rewrite_key``) and keeps one ``RewriteCache`` per process.

Why a cached result is the right answer: the rewrite is a function of the response body's bytes as received, its
``Content-Type`` (HTML or XHTML, the charset) and ``Content-Encoding`` (the codings undone and redone; mitmproxy's gzip
is written with mtime 0), the document URL the links are resolved against (which holds the origin the leave links are
made on), the gateway prefix, the policy (which hosts are external) and the gateway's keys (a leave link's ``sig`` is
an HMAC-SHA256 of the destination: the same destination under the same key gives the same bytes;
``govgate.core.leave_link``). No clock, no randomness. The key holds every one of those inputs but the body, the
policy and the keys; an entry holds the body it was made from, and is an answer only for a body equal to it, byte for
byte (a memory comparison: about ten times cheaper than a digest of the body, and no collisions to argue about). So
one version of a page is kept per key: the last one rewritten. The policy and keys stand for themselves: the cache
is emptied whenever either changes (``bind``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

ENTRY_OVERHEAD = 256  # bytes counted for an entry beyond its bodies: the key, the record, the dict slot
DEFAULT_MAX_BYTES = 32 * 1024 * 1024  # per process


@dataclass(frozen=True, slots=True)
class CachedRewrite:
    """What one rewrite produced from ``raw`` (the body as received): the raw body to send (codings redone), or None
    when the page goes out unchanged."""

    raw: bytes
    body: bytes | None
    links: int
    rewritten: int
    encoding: str

    @property
    def size(self) -> int:
        return len(self.raw) + (len(self.body) if self.body is not None else 0) + ENTRY_OVERHEAD


type RewriteKey = tuple[str, str, str, str]


def rewrite_key(*, content_type: str, content_encoding: str, document_url: str, prefix: str) -> RewriteKey:
    """The inputs of the rewrite other than the body, policy and keys (the fields of a tuple: none runs into the
    next)."""
    return (content_type, content_encoding, document_url, prefix)


def _directives(cache_control: str) -> set[str]:
    return {part.split("=", 1)[0].strip().lower() for part in cache_control.split(",")}


def shared_cacheable(*, cache_control: str, set_cookie: bool, authorization: bool, staff: bool) -> bool:
    """Whether a rewrite result may be kept: only for a response a shared cache could store (RFC 9111 §3, §3.5).

    Not kept: ``Cache-Control: private`` or ``no-store`` (also the field-named ``private="..."``), a response setting
    a cookie, an answer to a request with ``Authorization``, and any staff path (a page for one account).
    ``no-cache`` is no obstacle (it asks a cache to revalidate, not to forget; the body is re-checked here anyway:
    the key is its digest).
    """
    if staff or authorization or set_cookie:
        return False
    if cache_control:
        directives = _directives(cache_control)
        if "private" in directives or "no-store" in directives:
            return False
    return True


class RewriteCache:
    """Least recently used entries, bounded by the bytes they hold (bodies plus ``ENTRY_OVERHEAD`` each).

    ``bind(policy, keys)`` before use: when either is another object than the one bound, every entry goes.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[RewriteKey, CachedRewrite] = OrderedDict()
        self._bytes = 0
        self._bound: tuple[object, object] | None = None
        self.hits = 0
        self.misses = 0

    @property
    def size(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def bind(self, policy: object, keys: object) -> None:
        """Empties the cache unless ``policy`` and ``keys`` are the very objects it was filled under."""
        bound = self._bound
        if bound is None or bound[0] is not policy or bound[1] is not keys:
            self.clear()
            self._bound = (policy, keys)

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def get(self, key: RewriteKey, raw: bytes) -> CachedRewrite | None:
        """The entry made under ``key`` from a body equal to ``raw``, or None."""
        entry = self._entries.get(key)
        if entry is None or entry.raw != raw:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def put(self, key: RewriteKey, entry: CachedRewrite) -> None:
        size = entry.size
        if size > self.max_bytes:
            return  # larger than the whole cache: not kept (and nothing evicted for it)
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old.size
        while self._entries and self._bytes + size > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.size
        self._entries[key] = entry
        self._bytes += size
