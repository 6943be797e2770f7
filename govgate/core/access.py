"""Access rules: which rule a request meets (``docs/decisions.md`` §2, §4). First match wins; no match is denied.

A rule matches when one of its path globs matches the request path and, if given, one of its
``hosts`` and ``methods`` does. Globs are compiled once, to one regular expression per rule, matched in time
linear in the path (``glob_to_regex``):

- ``*`` matches one path segment (no ``/``), possibly empty;
- ``**`` as a whole segment matches any number of segments, zero included: ``/news/**`` matches
  ``/news``, ``/news/`` and ``/news/a/b``; ``/**`` matches every path;
- everything else is literal and case-sensitive: ``/`` matches only ``/``.

Hosts are exact names or ``*.suffix`` (any name under the suffix, not the suffix itself), compared
in the canonical form of ``govgate.core.hosts``: case, port, a trailing dot and the spelling of an IP
literal (``[0:0:0:0:0:0:0:1]`` is ``[::1]``) do not matter; a Host that is not a host meets only
rules without ``hosts``. Methods are compared upper-case.

Path normalisation (``normalise_path``): a rule must judge the path the upstream will serve, so
that ``/public/../oa/x`` is judged as ``/oa/x``. The query and fragment are dropped; escapes of
unreserved characters are decoded (``%2e`` is ``.``, ``%7E`` is ``~``); other escapes are kept,
upper-cased; non-ASCII is percent-encoded as UTF-8; runs of ``/`` collapse to one; path parameters
(``;jsessionid=…``) are dropped from each segment, as servlet containers do; dot-segments are
removed (RFC 3986 §5.2.4). A path the gate cannot judge safely has no rule, and so is denied:
an encoded ``/`` or ``\\`` (``%2F``, ``%5C``), a raw ``\\``, a NUL, raw bytes that are not UTF-8,
a malformed escape, a double encoding (``%25`` followed by two hex digits, plain or themselves encoded), a
leading ``//`` (an authority to a URL parser), a dot-segment hidden
behind ``;`` parameters (``/..;/``), or a path not starting with ``/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from govgate.core.hosts import host_of, parse_host
from govgate.core.policy.model import AccessRule, Allow
from govgate.errors import PolicyProblem

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX = frozenset("0123456789abcdefABCDEF")
_UNSAFE_ESCAPES = frozenset({"2F", "5C", "00"})
MAX_PATH = 8192
_DOUBLE_ENCODED = re.compile(r"%25[0-9A-Fa-f]{2}")  # after unreserved escapes are decoded (``%32`` is ``2``)


def _encode_non_ascii(text: str) -> str | None:
    """Non-ASCII as UTF-8 percent-escapes; None for bytes that were not UTF-8 (lone surrogates)."""
    if text.isascii():
        return text
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:
        return None  # invalid UTF-8 in the request line, kept by surrogateescape: refuse to judge
    return "".join(chr(b) if b < 0x80 else f"%{b:02X}" for b in raw)


def _decode_unreserved(path: str) -> str | None:
    """Decode escapes of unreserved characters, upper-case the rest; None when unsafe or malformed."""
    if "%" not in path:
        return path
    out: list[str] = []
    i = 0
    n = len(path)
    while i < n:
        ch = path[i]
        if ch != "%":
            out.append(ch)
            i += 1
            continue
        hexpair = path[i + 1 : i + 3]
        if len(hexpair) != 2 or not (hexpair[0] in _HEX and hexpair[1] in _HEX):
            return None
        code = hexpair.upper()
        if code in _UNSAFE_ESCAPES:
            return None
        decoded = chr(int(code, 16))
        out.append(decoded if decoded in _UNRESERVED else f"%{code}")
        i += 3
    result = "".join(out)
    if "%25" in result and _DOUBLE_ENCODED.search(result):
        # An escape encoded twice, however its digits are spelled (``%252f``, ``%25%32%66``): an upstream that
        # decodes twice would see something else.
        return None
    return result


def _remove_dot_segments(segments: list[str]) -> list[str] | None:
    out: list[str] = []
    for raw in segments:
        seg = raw.split(";", 1)[0]
        if seg in (".", "..") and seg != raw:
            return None  # `/..;/` is a dot-segment to some servers (Tomcat) and a name to others
        if not seg:
            continue
        if seg == ".":
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(seg)
    return out


def normalise_path(raw: str) -> str | None:
    """The path as the upstream will serve it, or None when it cannot be judged safely (→ denied)."""
    path = raw.split("#", 1)[0].split("?", 1)[0]
    if not path.startswith("/") or len(path) > MAX_PATH or "\\" in path or "\x00" in path:
        return None
    if path.startswith("//"):
        return None  # `//news/oa/x`: host `news`, path `/oa/x` to a portal that parses the target as a URL
    encoded = _encode_non_ascii(path)
    decoded = _decode_unreserved(encoded) if encoded is not None else None
    if decoded is None:
        return None
    if "/." not in decoded and "//" not in decoded and ";" not in decoded:
        return decoded  # the common case: nothing to normalise
    # Runs of `/` collapse (as nginx's merge_slashes does) before dot-segments are removed; judging
    # `/public//../oa` as `/oa` is the stricter reading of the two an upstream could take.
    # Path parameters (`/oa;jsessionid=1/x`) are dropped for judging: servlet containers ignore them.
    segments = decoded[1:].split("/")
    trailing = decoded.endswith("/") or segments[-1].split(";", 1)[0] in (".", "..")
    out = _remove_dot_segments(segments)
    if out is None:
        return None
    result = "/" + "/".join(out)
    if trailing and out:
        result += "/"
    return result


def glob_to_regex(glob: str) -> str:
    """One path glob as a regular expression (for ``re.fullmatch``) on normalised paths.

    Linear in the path, whatever the glob: an unauthenticated request must not stall the event loop with a long
    path (``MAX_PATH``). A backtracking search for ``/a/**/b/**/c`` or ``/x/*-*-*.pdf`` tries every split of the
    path and grows as its length to the power of the wildcards. Here every part between two wildcards is matched
    at its first occurrence (an atomic group: never retried), which finds a match whenever there is one: if a
    later occurrence fits, so does the first, the wildcard after it taking up the difference. Only the last part
    (before the end, or the final ``/**``) is searched for, from one place at a time."""
    encoded = _encode_non_ascii(glob)
    if encoded is None:
        return "(?!)"  # not valid text: matches nothing (the loader never passes such a glob)
    glob = encoded
    if glob == "/**":
        return "/.*"
    parts = glob.split("/")
    last = len(parts) - 1
    # The last ``**`` of the glob: the segments after every earlier one are matched where first found (atomic).
    atomic_until = max((j for j in range(1, last + 1) if parts[j] == "**"), default=0)
    out: list[str] = []
    open_block = False
    for i, part in enumerate(parts):
        if i == 0:
            out.append(re.escape(part))  # "" for an absolute glob
            continue
        if part == "**":
            if open_block:
                out.append("(?=/|\\Z))")  # the block ends with a whole segment
                open_block = False
            if i == last:
                out.append("(?:/.*)?")  # `/news/**` matches `/news`, `/news/` and `/news/a/b`
                continue
            # Zero or more segments; up to the next `**`, the segments after it are matched where first found.
            if i < atomic_until:
                out.append("(?>(?:/[^/]*)*?")
                open_block = True
            else:
                out.append("(?:/[^/]*)*?")
            continue
        out.append("/" + _segment_regex(part))
    if open_block:  # never: a block is always closed by the `**` after it
        out.append(")")
    return "".join(out)


def _segment_regex(part: str) -> str:
    """One segment of a glob: literal pieces, ``*`` any run of characters but ``/``. Every piece between two
    ``*`` is matched at its first occurrence (atomic), the last one as far right as the segment ends."""
    pieces = re.split(r"\*+", part)
    if len(pieces) == 1:
        return re.escape(part)
    middle = "".join(f"(?>[^/]*?{re.escape(p)})" for p in pieces[1:-1])
    return re.escape(pieces[0]) + middle + "[^/]*" + re.escape(pieces[-1])


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule: AccessRule
    pattern: re.Pattern[str]
    exact_hosts: frozenset[str] | None  # None: any host
    host_suffixes: tuple[str, ...]  # ".example.gov.cn" for "*.example.gov.cn"
    methods: frozenset[str] | None

    def host_matches(self, host: str) -> bool:
        if self.exact_hosts is None:
            return True
        return host in self.exact_hosts or any(host.endswith(s) for s in self.host_suffixes)


def compile_rule(rule: AccessRule) -> CompiledRule:
    regex = "|".join(f"(?:{glob_to_regex(g)})" for g in rule.paths) or "(?!)"
    exact: frozenset[str] | None = None
    suffixes: list[str] = []
    if rule.hosts is not None:
        names = set()
        for host in rule.hosts:
            # The loader stores canonical hosts; read again so that a rule built in code compares the same.
            # A host that does not parse is left out: it matches nothing (fail closed).
            wildcard = host.startswith("*.")
            name = parse_host(host[2:] if wildcard else host)
            if name is None:
                continue
            if wildcard:
                suffixes.append("." + name)
            else:
                names.add(name)
        exact = frozenset(names)
    methods = frozenset(m.upper() for m in rule.methods) if rule.methods is not None else None
    return CompiledRule(rule=rule, pattern=re.compile(regex, re.DOTALL), exact_hosts=exact,
                        host_suffixes=tuple(suffixes), methods=methods)


def compile_rules(rules: Iterable[AccessRule]) -> tuple[CompiledRule, ...]:
    return tuple(compile_rule(r) for r in rules)


def match_normalised(compiled: Sequence[CompiledRule], host: str, path: str, method: str) -> AccessRule | None:
    """First rule matching an already normalised host (``hosts.host_of``), path and upper-case method."""
    for c in compiled:
        if c.methods is not None and method not in c.methods:
            continue
        if not c.host_matches(host):
            continue
        if c.pattern.fullmatch(path) is not None:
            return c.rule
    return None


def match_rule(compiled: Sequence[CompiledRule], host: str, path: str, method: str) -> AccessRule | None:
    """Contract §4.2: the first rule whose paths (and hosts, methods) match; None means denied."""
    normal = normalise_path(path)
    if normal is None:
        return None
    return match_normalised(compiled, host_of(host), normal, method.upper())


def catch_all_warnings(rules: Sequence[AccessRule], file: str) -> list[PolicyProblem]:
    """A ``public`` rule for every path (``/**``) below a staff rule (for ``govgate check``): valid, but where the
    portal's server reads a path otherwise than the rules do it opens the staff pages. IIS serves ``/OA/x`` as
    ``/oa/x`` (case), Windows servers ``/oa./x`` and ``/oa%20/x`` (a trailing dot or space trimmed), ASP.NET
    ``/(S(x))/oa/x`` (cookieless session segments): the staff rule does not match them, the catch-all does.
    A deny-all last rule and the public paths listed keep those refused (``docs/decisions.md`` §4)."""
    out: list[PolicyProblem] = []
    staff = [r for r in rules if r.allow is Allow.STAFF]
    for rule in rules:
        if rule.allow is not Allow.PUBLIC or "/**" not in rule.paths:
            continue
        above = [r for r in staff if r.index < rule.index
                 and (r.hosts is None or rule.hosts is None or set(r.hosts) & set(rule.hosts))]
        if above:
            out.append(PolicyProblem(file, rule.line, f"access[{rule.index}].paths", (
                f"'/**' makes every path public that the staff rule '{above[0].name}' above does not match: a portal "
                "on IIS or ASP.NET serves /OA/x, /oa./x or /(S(x))/oa/x as /oa/x; list the public paths and end "
                "with a deny-all rule (Art. 19)"), warning=True))
    return out
