"""Which hosts are "outside" (Art. 15): the classification behind outbound-link warnings.

Owns one question: given the host a browser would navigate to, is it a non-government site whose
links must go through the warning page? Contract §6: a host is internal when it is one of
``gateway.public_hosts`` (without port, case-insensitively, ignoring a trailing dot), under one of
``outbound.government_suffixes`` as whole labels (``evilgov.cn`` is not under ``gov.cn``), or in
``outbound.allow_hosts`` (``*.`` matches any deeper name, not the bare suffix). Everything else,
IP literals included, is external. Every host, from the policy or a link, is compared in the
canonical form of ``govgate.core.hosts`` (so a link to ``[0:0:0:0:0:0:0:1]`` is the ``[::1]`` of
``public_hosts``); a host that form cannot read is external (fail closed).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from govgate.core.hosts import host_of, parse_host
from govgate.core.html_scan import PlainHosts
from govgate.core.policy.model import Outbound, Policy

_CACHE_LIMIT = 8192

# A name ``plain_internal_hosts`` may hold literally (plain, canonical, not ending in a number: no IPv4 reading).
_PLAIN_NAME = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")


def _plain_canonical(name: str) -> bool:
    """Whether ``name`` is a plain canonical name, which ``PlainHosts`` may hold."""
    if not _PLAIN_NAME.fullmatch(name) or ".." in name or host_of(name) != name:
        return False
    return not _NUMERIC_LABEL.fullmatch(name.rsplit(".", 1)[-1])


def _policy_host(entry: str) -> str:
    """A host as the policy lists it (stored canonical; read again for policies built in code); "" if none."""
    return parse_host(entry) or ""


class HostClassifier:
    """Compiled from the policy once; ``is_external`` is a few set look-ups, cached per host."""

    __slots__ = ("_cache", "_exact", "_plain", "_suffixes", "_variants", "_wild")

    def __init__(self, outbound: Outbound, public_hosts: tuple[str, ...], extra_internal: tuple[str, ...] = ()):
        exact = {_policy_host(h) for h in public_hosts} | {host_of(h) for h in extra_internal}
        wild: list[str] = []
        for entry in outbound.allow_hosts:
            if entry.startswith("*."):
                wild.append("." + _policy_host(entry[2:]))
            else:
                exact.add(_policy_host(entry))
        exact.discard("")
        self._exact = frozenset(exact)
        self._suffixes = tuple(s for s in (_policy_host(s) for s in outbound.government_suffixes) if s)
        self._wild = tuple(w for w in wild if w != ".")
        self._cache: dict[str, bool] = {}
        self._variants: dict[tuple[str, ...], HostClassifier] = {}
        self._plain: PlainHosts | None = None

    @classmethod
    def from_policy(cls, policy: Policy) -> HostClassifier:
        return cls(policy.outbound, policy.gateway.public_hosts)

    def with_internal(self, *hosts: str) -> HostClassifier:
        """A classifier that also treats ``hosts`` (e.g. the host a page was served from) as internal."""
        extra = tuple(h for h in (host_of(h) for h in hosts) if h and h not in self._exact)
        if not extra:
            return self
        clone = self._variants.get(extra)
        if clone is None:  # kept, so each page served under the same host reuses the warm cache
            clone = HostClassifier.__new__(HostClassifier)
            clone._exact = self._exact | frozenset(extra)
            clone._suffixes = self._suffixes
            clone._wild = self._wild
            clone._cache = {}
            clone._variants = {}
            clone._plain = None
            if len(self._variants) >= 64:
                self._variants.clear()
            self._variants[extra] = clone
        return clone

    def plain_internal_hosts(self) -> PlainHosts:
        """The plainly spelled hosts this classifier calls internal, for the link scanner's jumps
        (``html_scan.scanners_for``): every host ``PlainHosts.pattern()`` matches, lower-cased, is one ``host_of``
        keeps as it is and ``is_external`` answers False for. The exact internal hosts, and names of plain labels
        under a government suffix or a wildcard allowed host; anything else (IDNA labels, IP literals, odd spellings)
        is left to the full parse."""
        if self._plain is None:
            def literals(names: Iterable[str]) -> tuple[bytes, ...]:
                return tuple(n.encode("ascii") for n in names if _plain_canonical(n))

            self._plain = PlainHosts(literals(sorted(self._exact)), literals(self._suffixes),
                                     literals(w[1:] for w in self._wild))
        return self._plain

    def plain_internal_pattern(self) -> bytes:
        """``plain_internal_hosts()`` as a regex (bytes) matching, as a whole, only those hosts."""
        return self.plain_internal_hosts().pattern()

    def is_external(self, host: str) -> bool:
        cached = self._cache.get(host)
        if cached is not None:
            return cached
        result = self._classify(host_of(host))
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[host] = result
        return result

    def _classify(self, host: str) -> bool:
        # Art. 15 (第十五条): a link leaving for a non-government site is clearly warned. Fail closed:
        # an empty or malformed host counts as external.
        if not host:
            return True
        if host in self._exact:
            return False
        if host.startswith("["):
            return True  # IPv6 literals are only internal when listed exactly
        for suffix in self._suffixes:
            if host == suffix or host.endswith("." + suffix):
                return False
        return all(not host.endswith(w) for w in self._wild)


def classify_host(host: str, outbound: Outbound, public_hosts: tuple[str, ...]) -> bool:
    """True when ``host`` is external (one-off form; compile a ``HostClassifier`` for repeated use)."""
    return HostClassifier(outbound, public_hosts).is_external(host)
