"""The PROXY protocol header (HAProxy's, versions 1 and 2): which client a TCP load balancer is speaking for.

A TCP balancer (HAProxy ``mode tcp``, nginx ``stream``) opens its own connection to the gateway, so the TCP peer
is the balancer, not the browser. With ``send-proxy`` / ``proxy_protocol on`` it first sends one header naming
the client's address, before any TLS byte. Art. 19 (第十九条) judges the client's address, so with
``gateway.proxy_protocol: true`` that header is how the gateway learns it (``govgate/addons/proxy_protocol.py``
reads it off the connection and calls this module).

Pure functions of bytes, in the order a reader meets them:

1. ``header_version(first)`` — the first ``PREFIX_LENGTH`` (6) bytes: ``PROXY `` is version 1, the start of the
   12-byte binary signature is version 2, anything else is no header;
2. version 1: ``parse_v1(line)`` on the text line up to and including CRLF (at most ``V1_MAX_LENGTH``, 107 bytes):
   ``PROXY TCP4|TCP6 SRC DST SPORT DPORT`` or ``PROXY UNKNOWN …``;
3. version 2: ``v2_payload_length(fixed)`` on the first ``V2_FIXED_LENGTH`` (16) bytes, then
   ``parse_v2(fixed, payload)``.

``starts_like_header(prefix)`` answers the other question, for connections that must *not* carry a header (a peer
that is not a trusted proxy): True, False, or None while the bytes so far are too few to tell.

A ``ProxyHeader`` with ``source`` None (v1 ``UNKNOWN``, v2 ``LOCAL``) is the balancer speaking for itself —
its health checks: the connection's own peer stands. Anything malformed raises ``ProxyHeaderError`` whose
``reason`` is one of the fixed ``ProxyRefusal`` words (logs and metrics use them, never the bytes received).
Version 2 PROXY headers for UNIX sockets or an unspecified family are refused: they name no IP address, and a
proxy that claims to speak for a client must say which (fail closed).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from enum import StrEnum

from govgate.core.policy.model import IPAddress

V1_PREFIX = b"PROXY "
V1_MAX_LENGTH = 107  # the whole line, CRLF included (the specification's bound)
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED_LENGTH = 16  # signature, version and command, family and protocol, payload length
PREFIX_LENGTH = 6  # enough to tell version 1 from version 2 from anything else

_V2_ADDRESS_LENGTHS = {0x1: 12, 0x2: 36}  # AF_INET, AF_INET6: source, destination, two ports
_STREAM = 0x1


class ProxyRefusal(StrEnum):
    """Why a connection was closed before anything else was read from it (logs and metrics labels)."""

    MISSING = "missing"  # a trusted proxy's connection that does not start with a header
    MALFORMED = "malformed"  # it starts like one, but is not a valid header
    UNSUPPORTED = "unsupported"  # valid, but names no IP client (UNIX socket, unspecified family, datagrams)
    TRUNCATED = "truncated"  # the connection ended within the header
    TIMEOUT = "timeout"  # the header did not arrive in time
    UNTRUSTED = "untrusted"  # a header from a peer outside gateway.trusted_proxies


class ProxyHeaderError(ValueError):
    def __init__(self, reason: ProxyRefusal, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


type Endpoint = tuple[IPAddress, int]


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    version: int  # 1 or 2
    source: Endpoint | None  # the client; None: the balancer's own connection (v1 UNKNOWN, v2 LOCAL)
    destination: Endpoint | None  # where the client connected to (the balancer's address and port)
    length: int  # bytes the header took on the wire


def header_version(first: bytes) -> int:
    """1 or 2 from the connection's first ``PREFIX_LENGTH`` bytes; ``ProxyHeaderError(MISSING)`` for anything
    else (a browser's request or TLS ClientHello straight from the balancer)."""
    if len(first) < PREFIX_LENGTH:
        raise ProxyHeaderError(ProxyRefusal.TRUNCATED, "fewer than 6 bytes")
    if first[:PREFIX_LENGTH] == V1_PREFIX:
        return 1
    if first[:PREFIX_LENGTH] == V2_SIGNATURE[:PREFIX_LENGTH]:
        return 2
    raise ProxyHeaderError(ProxyRefusal.MISSING, "the connection does not start with a PROXY protocol header")


def starts_like_header(prefix: bytes) -> bool | None:
    """Whether a connection starting with ``prefix`` carries a PROXY header (either version); None while
    ``prefix`` is a proper prefix of a signature and more bytes are needed to tell."""
    for signature in (V1_PREFIX, V2_SIGNATURE):
        n = min(len(prefix), len(signature))
        if prefix[:n] == signature[:n]:
            return True if n == len(signature) else None
    return False


def parse_v1(line: bytes) -> ProxyHeader:
    """Version 1: one ASCII line ``PROXY TCP4|TCP6 SRC DST SPORT DPORT\\r\\n`` (or ``PROXY UNKNOWN …\\r\\n``)."""
    if len(line) > V1_MAX_LENGTH or not line.endswith(b"\r\n"):
        raise ProxyHeaderError(ProxyRefusal.MALFORMED, "a version 1 line must end in CRLF within 107 bytes")
    if not line.startswith(V1_PREFIX):
        raise ProxyHeaderError(ProxyRefusal.MISSING, "not a version 1 header")
    try:
        text = line[:-2].decode("ascii")
    except UnicodeDecodeError:
        raise ProxyHeaderError(ProxyRefusal.MALFORMED, "not ASCII") from None
    fields = text.split(" ")
    if len(fields) >= 2 and fields[1] == "UNKNOWN":
        # The specification: the receiver ignores whatever follows UNKNOWN and uses the connection's endpoints.
        return ProxyHeader(version=1, source=None, destination=None, length=len(line))
    if len(fields) != 6 or fields[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError(ProxyRefusal.MALFORMED, "expected PROXY TCP4|TCP6 SRC DST SPORT DPORT")
    version = 4 if fields[1] == "TCP4" else 6
    source = (_v1_address(fields[2], version), _v1_port(fields[4]))
    destination = (_v1_address(fields[3], version), _v1_port(fields[5]))
    return ProxyHeader(version=1, source=source, destination=destination, length=len(line))


def _v1_address(text: str, version: int) -> IPAddress:
    if "%" in text:
        raise ProxyHeaderError(ProxyRefusal.MALFORMED, "zone ids are not addresses")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ProxyHeaderError(ProxyRefusal.MALFORMED, "not an IP address") from None
    if address.version != version:
        raise ProxyHeaderError(ProxyRefusal.MALFORMED, f"not an IPv{version} address")
    return address


def _v1_port(text: str) -> int:
    # Decimal, 0–65535, no sign, no leading zero (the specification's grammar).
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or (len(text) > 1 and text[0] == "0"):
        raise ProxyHeaderError(ProxyRefusal.MALFORMED, "not a port number")
    port = int(text)
    if port > 65535:
        raise ProxyHeaderError(ProxyRefusal.MALFORMED, "port out of range")
    return port


def v2_payload_length(fixed: bytes) -> int:
    """Version 2: check the first 16 bytes (signature, version) and return how many bytes follow them."""
    if len(fixed) != V2_FIXED_LENGTH:
        raise ProxyHeaderError(ProxyRefusal.TRUNCATED, "fewer than 16 bytes")
    if fixed[:12] != V2_SIGNATURE:
        raise ProxyHeaderError(ProxyRefusal.MALFORMED, "not the version 2 signature")
    if fixed[12] >> 4 != 2:
        raise ProxyHeaderError(ProxyRefusal.MALFORMED, "version 2 signature with another version number")
    return int(struct.unpack("!H", fixed[14:16])[0])


def parse_v2(fixed: bytes, payload: bytes) -> ProxyHeader:
    """Version 2: the 16 fixed bytes and the ``v2_payload_length(fixed)`` bytes after them (addresses, then TLVs,
    which are not needed here and are skipped)."""
    length = v2_payload_length(fixed)
    if len(payload) != length:
        raise ProxyHeaderError(ProxyRefusal.TRUNCATED, "payload shorter than its length")
    command = fixed[12] & 0x0F
    family, transport = fixed[13] >> 4, fixed[13] & 0x0F
    total = V2_FIXED_LENGTH + length
    if command == 0x0:  # LOCAL: the balancer's own connection (health checks); addresses, if any, are ignored
        return ProxyHeader(version=2, source=None, destination=None, length=total)
    if command != 0x1:
        raise ProxyHeaderError(ProxyRefusal.MALFORMED, "unknown version 2 command")
    if family not in _V2_ADDRESS_LENGTHS or transport != _STREAM:
        if family > 0x3 or transport > 0x2:
            raise ProxyHeaderError(ProxyRefusal.MALFORMED, "unknown address family or transport")
        raise ProxyHeaderError(ProxyRefusal.UNSUPPORTED, "a PROXY header without a TCP/IP client")
    need = _V2_ADDRESS_LENGTHS[family]
    if length < need:
        raise ProxyHeaderError(ProxyRefusal.MALFORMED, "payload too short for its addresses")
    if family == 0x1:
        src: IPAddress = ipaddress.IPv4Address(payload[0:4])
        dst: IPAddress = ipaddress.IPv4Address(payload[4:8])
        ports = payload[8:12]
    else:
        src = ipaddress.IPv6Address(payload[0:16])
        dst = ipaddress.IPv6Address(payload[16:32])
        ports = payload[32:36]
    sport, dport = struct.unpack("!HH", ports)
    return ProxyHeader(version=2, source=(src, sport), destination=(dst, dport), length=total)


def v1_line(source: Endpoint, destination: Endpoint) -> bytes:
    """The version 1 line a balancer sends for ``source`` connecting to ``destination`` (docs and tests)."""
    family = "TCP4" if source[0].version == 4 else "TCP6"
    return f"PROXY {family} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n".encode("ascii")


def v2_header(source: Endpoint | None, destination: Endpoint | None, *, tlvs: bytes = b"") -> bytes:
    """The version 2 header a balancer sends: PROXY for ``source`` → ``destination``, or LOCAL when ``source`` is
    None (docs and tests)."""
    if source is None or destination is None:
        return V2_SIGNATURE + bytes((0x20, 0x00)) + struct.pack("!H", len(tlvs)) + tlvs
    family = 0x1 if source[0].version == 4 else 0x2
    body = source[0].packed + destination[0].packed + struct.pack("!HH", source[1], destination[1]) + tlvs
    return V2_SIGNATURE + bytes((0x21, family << 4 | _STREAM)) + struct.pack("!H", len(body)) + body
