"""Scan a page that differs from one scanned before only in places (a date, a counter, a token) without scanning all
of it again: the outbound-link scan behind Art. 15 (第十五条) for pages served afresh each time, which the rewrite cache
(``govgate.core.rewrite_cache``) cannot answer (``docs/outbound-links.md``, "Cache").

Pure: no I/O, no clock, no mitmproxy. The addon (``govgate.addons.outbound_links``) keeps one ``ScanMemo`` per process
and hands it to ``link_rewrite.rewrite_html`` for the pages a shared cache could store (``shared_cacheable``).

How: the memo keeps, per key (the document URL: which earlier page to compare with), the last page's bytes, what its
scan found (``ScanState``) and the scan's resume points (``html_scan.ScanTrace``: position, targets found before it,
the scan's state there, every ``SPACING`` bytes). For a new page it finds the bytes both pages share at the start
(``prefix``) and at the end (``suffix``), then

- resumes at the last point at least ``MARGIN`` bytes before the first difference, with that point's state and the
  targets found before it: the scan reads forward only, and no step ending at a position where a point is saved
  looks further past it than an end tag's name (``</noscript`` and the byte after it; a step that stops before a
  tag that needs a closer look may have read that tag, but no point is saved there), so everything up to that
  point was found in the
  same bytes as the new page's and holds for it. One exception: a quoted attribute value never closed is read
  according to whether any quote follows anywhere (``_same_quotes_after``); where that differs between the two
  pages, the scan starts at the beginning;
- scans the new bytes from there, and at every token boundary inside the shared end looks for the old scan's point
  at the same place (shifted by the difference in length) with the same state; from there on both scans read the
  same bytes in the same state, so the old scan's targets (shifted) are the new page's. When no such point comes
  within ``html_scan.SYNC_WINDOW`` bytes of the shared end, the scan stops looking and runs to the end.

The result is the very ``ScanState`` a whole scan of the new page gives; ``tests/outbound/test_scan_memo.py`` checks
that with hypothesis on edited documents. A page with nothing in common with the last one costs a comparison of a
few bytes and the saved points more than a plain scan; one that shares its end with the last one but whose scan
does not meet the old one's there costs up to a look at every boundary of ``SYNC_WINDOW`` bytes more.

``link_results`` keeps, with the last page's scan, what each link value was rewritten to (``link_rewrite``), counted
in the same bound as each page adds to it (``links_added``).
"""

from __future__ import annotations

import bisect
import itertools
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from govgate.core.html_scan import Scanners, ScanPoint, ScanState, ScanTrace, scan_html

SPACING = 2048  # bytes between resume points: about 20 µs of scanning to reach a difference from the point before it
# A resume point is used only this far before the first difference. The scan's reach past the position a step ends
# at is 11 bytes (``</noscript`` and the byte after it); the tests check the memo with a margin of REACH + 1.
REACH = 11
MARGIN = 256
MIN_BYTES = 16 * 1024  # smaller pages are scanned whole: a scan of them costs less than keeping them
DEFAULT_MAX_BYTES = 16 * 1024 * 1024  # per process: bodies kept, plus their targets and points
_BLOCK = 4096
_TARGET_BYTES = 120  # what one target tuple costs in memory, about
_POINT_BYTES = 150
_LINK_BYTES = 300  # one link's rewrite result beyond its raw and new values: the tuples and the dict slot
MAX_LINK_RESULTS = 4096  # per key; a page leaving more is not kept (its results are gathered again next time)


def common_prefix(a: bytes, b: bytes) -> int:
    """The length of the longest common prefix of ``a`` and ``b`` (compared a block at a time, in C)."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i:i + _BLOCK] == b[i:i + _BLOCK]:
        i += _BLOCK
    if i >= n:
        return n
    lo, hi = i, min(i + _BLOCK, n)  # a[:lo] == b[:lo], and they differ before hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo + 1 if a[lo] == b[lo] else lo


def common_suffix(a: bytes, b: bytes, limit: int) -> int:
    """The length of the longest common suffix of ``a`` and ``b``, at most ``limit``."""
    la, lb = len(a), len(b)
    i = 0
    while i < limit:
        step = min(_BLOCK, limit - i)
        if a[la - i - step:la - i] != b[lb - i - step:lb - i]:
            lo, hi = 0, step  # the last lo bytes of this block are equal, the last hi are not
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if a[la - i - mid:la - i] == b[lb - i - mid:lb - i]:
                    lo = mid
                else:
                    hi = mid
            if lo + 1 <= step and a[la - i - lo - 1] == b[lb - i - lo - 1]:
                lo += 1
            return i + lo
        i += step
    return limit


def _same_quotes_after(a: bytes, b: bytes, at: int) -> bool:
    """Whether ``a`` and ``b`` (the same bytes before ``at``) either both have a ``"`` from ``at`` on or both have none,
    and the same for ``'``.

    The one place where the scan's reading of a tag depends on bytes far past its end: a quoted attribute value that
    is never closed. The tokenizer would run to the end of the document; the scan's grammar, finding no closing quote
    anywhere after it, reads the quote as part of a name instead and ends the tag at the next ``>`` (more tags, so
    more links looked at: the safe side). Whether a quote is closed at all is whether the document has one more
    after it; for a quote opened before ``at`` that is the same in both exactly when this holds.
    """
    return all((a.rfind(q, at) >= 0) == (b.rfind(q, at) >= 0) for q in (b'"', b"'"))


@dataclass(slots=True)
class _Entry:
    buf: bytes
    start: int
    scanners: Scanners
    state: ScanState
    points: list[tuple[int, int, ScanPoint]]
    # What the links of the pages under this key were rewritten to (``link_results``): (their setting, results).
    links: tuple[object, dict[Any, Any]] | None = None
    links_bytes: int = 0  # what ``links`` holds, counted as each page's results are added (``links_added``)
    kept_size: int = 0  # ``size`` when it was counted in the memo's bytes

    @property
    def size(self) -> int:
        return (len(self.buf) + _TARGET_BYTES * len(self.state.targets) + _POINT_BYTES * len(self.points)
                + self.links_bytes + 256)


class ScanMemo:
    """The last page scanned per key, least recently used first out, bounded by ``max_bytes``.

    ``scan`` returns a ``ScanState`` the caller must not change (it is kept for the next page).
    ``rescanned`` counts the bytes scanned for pages compared with an earlier one (tests, diagnostics).
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, *, spacing: int = SPACING, margin: int = MARGIN,
                 min_bytes: int = MIN_BYTES) -> None:
        self.max_bytes = max_bytes
        self.spacing = spacing
        self.margin = margin  # the tests set it to just past the scan's reach, to check that claim
        self.min_bytes = min_bytes
        self._entries: OrderedDict[tuple[str, bool], _Entry] = OrderedDict()
        self._bytes = 0
        self.rescanned = 0
        self.reused = 0

    @property
    def size(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def scan(self, key: str, buf: bytes, start: int, *, skip_same_host: bool, scanners: Scanners) -> ScanState:
        """``scan_html(buf, start, len(buf), state, skip_same_host=..., scanners=...)``'s ``state``, using the
        scan of the page last scanned under ``key`` where it still holds."""
        if len(buf) < self.min_bytes:
            state = ScanState()
            scan_html(buf, start, len(buf), state, skip_same_host=skip_same_host, scanners=scanners)
            return state
        slot = (key, skip_same_host)
        old = self._entries.get(slot)
        if old is None or old.start != start or old.scanners != scanners:
            state = ScanState()
            trace = ScanTrace(self.spacing, start=start)
            scan_html(buf, start, len(buf), state, skip_same_host=skip_same_host, scanners=scanners, trace=trace)
            self._keep(slot, _Entry(buf, start, scanners, state, trace.points))
            return state
        entry = self._rescan(old, buf, skip_same_host)
        entry.links, entry.links_bytes = old.links, old.links_bytes
        self._keep(slot, entry)
        return entry.state

    def link_results(self, key: str, setting: object) -> dict[Any, Any] | None:
        """A dict for the caller's results per link value on the pages under ``key``, kept with the last page's scan
        while ``setting`` (all else the results depend on) stays equal; None when no page is kept under ``key``.

        ``link_rewrite`` keeps there what each distinct link value of the page was rewritten to, so that the next
        version of the page (most of its links the same) looks each up instead of resolving and signing it again.
        """
        entry = self._link_entry(key)
        if entry is None:
            return None
        links = entry.links
        if links is None or links[0] != setting:
            self._grow(entry, -entry.links_bytes)
            links = (setting, {})
            entry.links, entry.links_bytes = links, 0
        return links[1]

    def links_added(self, key: str, results: dict[Any, Any], before: int) -> None:
        """Counts what a page added to ``results`` (from ``link_results``; it held ``before`` entries) in the memo's
        bytes, evicting older pages as needed; drops the results past ``MAX_LINK_RESULTS`` or the bound."""
        entry = self._link_entry(key)
        if entry is None or entry.links is None or entry.links[1] is not results:
            return
        if len(results) > MAX_LINK_RESULTS:
            self._grow(entry, -entry.links_bytes)
            entry.links, entry.links_bytes = None, 0
            return
        added = sum(len(k[1]) + len(v[0] or b"") + _LINK_BYTES
                    for k, v in itertools.islice(reversed(results.items()), len(results) - before))
        entry.links_bytes += added
        self._grow(entry, added)
        while self._bytes > self.max_bytes and next(iter(self._entries.values())) is not entry:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.kept_size
        if self._bytes > self.max_bytes:  # this page alone: its results are not kept
            self._grow(entry, -entry.links_bytes)
            entry.links, entry.links_bytes = None, 0

    def _link_entry(self, key: str) -> _Entry | None:
        return self._entries.get((key, True)) or self._entries.get((key, False))

    def _grow(self, entry: _Entry, by: int) -> None:
        """``by`` more bytes held by ``entry``, a kept one, counted in the memo's bytes."""
        entry.kept_size += by
        self._bytes += by

    def _rescan(self, old: _Entry, buf: bytes, skip_same_host: bool) -> _Entry:
        prefix = common_prefix(old.buf, buf)
        if prefix == len(buf) == len(old.buf):
            self.reused += len(buf)
            return _Entry(buf, old.start, old.scanners, old.state, old.points)  # the same bytes: the same scan
        suffix = common_suffix(old.buf, buf, min(len(old.buf), len(buf)) - prefix)
        delta = len(buf) - len(old.buf)
        points = old.points
        # The last resume point far enough before the first difference (none: from the start).
        i = bisect.bisect_right(points, prefix - self.margin, key=lambda p: p[0]) - 1
        if not _same_quotes_after(old.buf, buf, prefix):
            i = -1
        sync_from = len(buf) - suffix
        sync = {pos + delta: (j, point) for j, (pos, _, point) in enumerate(points)
                if pos + delta >= sync_from and j > i}
        trace = ScanTrace(self.spacing, start=points[i][0] if i >= 0 else old.start, sync=sync, sync_from=sync_from)
        if i >= 0:
            resume_pos, found, point = points[i]
            state = ScanState(old.state.targets[:found])
            scan_html(buf, resume_pos, len(buf), state, skip_same_host=skip_same_host, scanners=old.scanners,
                      trace=trace, resume=point)
        else:
            resume_pos = old.start
            state = ScanState()
            scan_html(buf, resume_pos, len(buf), state, skip_same_host=skip_same_host, scanners=old.scanners,
                      trace=trace)
        new_points = points[:max(i, 0)] + trace.points
        self.reused += resume_pos - old.start
        if trace.synced is None:
            self.rescanned += len(buf) - resume_pos
            return _Entry(buf, old.start, old.scanners, state, new_points)
        at, j = trace.synced
        old_found = points[j][1]
        self.rescanned += at - resume_pos
        self.reused += len(buf) - at
        found = len(state.targets)
        state.targets.extend((kind, vs + delta, ve + delta, flag)
                             for kind, vs, ve, flag in old.state.targets[old_found:])
        state.base, state.base_seen = old.state.base, old.state.base_seen
        new_points.extend((pos + delta, n - old_found + found, point) for pos, n, point in points[j:])
        return _Entry(buf, old.start, old.scanners, state, new_points)

    def _keep(self, slot: tuple[str, bool], entry: _Entry) -> None:
        previous = self._entries.pop(slot, None)
        if previous is not None:
            self._bytes -= previous.kept_size
        size = entry.size  # the link results are counted as they are now (a page's more come after: bounded)
        if size > self.max_bytes:
            return
        while self._entries and self._bytes + size > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.kept_size
        entry.kept_size = size
        self._entries[slot] = entry
        self._bytes += size
