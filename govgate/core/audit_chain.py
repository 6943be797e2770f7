"""The tamper-evident form of audit records (Art. 20): canonical lines, the hash chain, the MAC and the
signatures. Checking a whole log is ``govgate.core.audit_walk``.

Art. 20 (第二十条): access logs kept at least one year, backed up, with their integrity assured;
graded protection level 3 asks that audit records be protected from deletion, modification and overwrite.

A record is one line of JSON. Its canonical form is the record *without* ``mac`` serialised with
sorted keys, no spaces, ``ensure_ascii=False``, UTF-8; the line on disk is that text with
``,"mac":"<hex>"`` appended before the closing brace (so ``mac`` is always the last key). Each
record carries:

- ``seq``: a number that grows by one per record across every file of the log;
- ``prev``: the hash (SHA-256, or SM3 for ``hmac-sm3``) of the previous record's whole line;
  the very first record links to ``GENESIS``;
- ``alg``: ``hmac-sha256`` or ``hmac-sm3``, the family used for ``prev`` and ``mac``;
- ``mac``: the HMAC of the canonical form under ``keys.derive(Purpose.AUDIT_MAC)``;
- on a daily seal, ``signature``: Ed25519 (``govgate.core.audit_keys``) over the canonical form without
  it. The head anchor is signed the same way. Since each ``prev`` names the line before, a signature
  vouches for every line before it: the exported public key checks the whole log without the MAC key.

Files are daily (``audit-YYYY-MM-DD.jsonl`` in ``gateway.timezone``). Each file starts with an
``audit.link`` record naming the file itself and the file before it (``prev_file``); a closed
day ends with an ``audit.seal`` record. So an edit, a deleted, inserted or reordered line, a
deleted day and a truncated day are all found: someone without the key cannot make a valid MAC.
Pruning (only past ``retention_days``, only with ``audit.prune``) is announced first by an
``audit.prune`` record naming the files, so the oldest remaining file's link is still explained.

What the chain alone cannot show is the removal of the newest records of the newest file
(nothing comes after them): the head anchor (``HEAD_NAME``) names the newest record; backups and the
syslog mirror are the outside anchors for the rest.

This module is pure: no clock, no files.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from enum import StrEnum
from hashlib import sha256
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac

from govgate.core.audit_event import AuditEvent
from govgate.core.audit_keys import AuditSigner, AuditVerifyKey
from govgate.core.keys import GatewayKeys, Purpose
from govgate.core.policy.model import AuditAlgorithm

type HashState = hashlib._Hash  # a hashlib object (``copy``, ``update``, ``digest``)

GENESIS = "0" * 64  # `prev` of the first record of a log (both families give 32-byte digests)

LINK_EVENT = "audit.link"  # first record of every file
SEAL_EVENT = "audit.seal"  # last record of a closed day
PRUNE_EVENT = "audit.prune"  # announces files deleted past retention (field `files`, comma-separated)
LOST_EVENT = "audit.lost"  # records the writer had to drop (field `lost`)
DAMAGED_EVENT = "audit.damaged"  # the writer found the chain's last record altered and carried on (field `file`)
REPAIR_EVENT = "audit.repair"  # an incomplete last line left by a crash was cut (field `dropped_bytes`)

CHAIN_FIELDS = frozenset({"seq", "prev", "alg", "mac"})

# The head anchor: a MACed note, rewritten (atomically) after every append, of the newest record's
# file, seq and hash. A hash chain cannot show that its newest records were cut while nothing was
# writing; with the anchor, `verify` (and the writer at its next start) can. Its name is not a daily
# file's, so listing and pruning never touch it.
HEAD_NAME = ".head"
HEAD_EVENT = "audit.head"

FILE_NAME = re.compile(r"audit-(\d{4}-\d{2}-\d{2})\.jsonl")

# Fields whose values must never be written in clear (passwords, TOTP codes, session ids, keys,
# `sig` values): the writer replaces them with a keyed hash so they stay correlatable, not revealed.
SECRET_FIELDS = frozenset(
    {"password", "passwd", "totp", "code", "otp", "session", "session_id", "sid", "secret", "key", "sig", "cookie"}
)


class Tamper(StrEnum):
    """What ``verify`` found wrong with a record (the first word of ``AuditChainBroken.what``)."""

    MODIFIED = "modified"
    MISSING = "missing"
    INSERTED = "inserted"
    REORDERED = "reordered"
    TRUNCATED = "truncated"


def file_name(day: date) -> str:
    return f"audit-{day.isoformat()}.jsonl"


def file_day(name: str) -> date | None:
    m = FILE_NAME.fullmatch(name)
    if m is None:
        return None
    try:
        return date.fromisoformat(m.group(1))
    except ValueError:
        return None


def canonical(obj: Mapping[str, object]) -> bytes:
    """Sorted keys, no spaces, ensure_ascii=False, UTF-8.

    A lone surrogate (mitmproxy decodes bytes that are not UTF-8 with ``surrogateescape``) cannot be
    UTF-8: it is written as its JSON escape (``\\udcff``), which reads back as the same string, so the
    line stays valid UTF-8 and canonical, and one odd value never stops the log.
    """
    return _utf8(json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False))


def _utf8(text: str) -> bytes:
    """JSON text as the UTF-8 bytes of a canonical line (see ``canonical`` for lone surrogates)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # A high+low surrogate pair is one character to a JSON reader: join such pairs first, so the
        # line reads back as what was written; what is left (lone surrogates) becomes ``\\uXXXX``.
        joined = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
        return joined.encode("utf-8", "backslashreplace")


def identifier_hash(keys: GatewayKeys, value: str) -> str:
    """A keyed hash of an identifier that must be correlatable across records but not revealed."""
    return "h:" + keys.mac(Purpose.IDENTIFIER_HASH, value.encode("utf-8", "surrogatepass")).hex()[:32]


def event_record(event: AuditEvent, keys: GatewayKeys) -> dict[str, object]:
    """The record for ``event`` (the documented fields), secrets replaced by a keyed hash.

    Never a password, TOTP code, session id or key in a record: a value under one of
    ``SECRET_FIELDS`` is replaced by ``identifier_hash`` (correlatable, not revealed).
    """
    record = event.to_record()
    for name in CHAIN_FIELDS:
        record.pop(name, None)
    if event.extra:
        for name in SECRET_FIELDS.intersection(event.extra):
            value = record.get(name)
            if value is not None:
                record[name] = identifier_hash(keys, str(value))
    return record


# What ``json.dumps(..., ensure_ascii=False)`` writes for one string (the same C function it uses).
_json_str: Callable[[str], str] = json.encoder.encode_basestring


# The canonical form of an event record without extra fields, its keys sorted, with a newline where ``alg``'s
# value, ``prev``'s hex digits (inside their quotes) and ``seq``'s value go: JSON text never holds a raw newline
# (a string escapes it), so splitting the encoded form at newlines cuts it exactly there.
_PREPARED = ('{"account":%s,"alg":\n,"article":%s,"client":%s,"country":%s,"decision":%s,"device":%s,"event":%s,'
             '"host":%s,"method":%s,"path":%s,"prev":"\n","reason":%s,"request_id":%s,"rule":%s,"seq":\n,"time":%s}')


# The JSON text of the values that recur from record to record (event, method, host, country, account, rule,
# decision, reason, article, device), kept so that each is encoded once, not once a record. Bounded: emptied when
# full. Unique values (path, request id, client address, time) are encoded each time.
_SEEN_LIMIT = 4096
_SEEN: dict[object, str] = {None: "null"}


def _seen(value: object) -> str:
    """``value``'s JSON text (``TypeError`` when it is not text), remembered in ``_SEEN``."""
    text = _json_str(value)  # type: ignore[arg-type]  # not text: TypeError, as the caller expects
    if len(_SEEN) >= _SEEN_LIMIT:
        _SEEN.clear()
        _SEEN[None] = "null"
    _SEEN[value] = text
    return text


# ``isoformat`` of an aware time costs more than the rest of a record's fields together, and the records of one
# second share everything but the microseconds. For the time zones whose offset is a function of the wall-clock
# second and ``fold`` (``ZoneInfo``: its transitions fall on whole seconds; ``timezone``: fixed), the text of the
# last second seen is kept: (that second's start, the JSON text before the microseconds, the text after them).
_WHOLE_SECOND_ZONES: tuple[type, ...] = (ZoneInfo, timezone)
_second: tuple[datetime, str, str] | None = None


def time_json(when: datetime) -> str:
    """``json.dumps(when.isoformat())``, the text before its microseconds remembered for the last second seen."""
    global _second
    cached = _second
    if cached is not None and type(when) is datetime:
        start, before, after = cached
        if when.tzinfo is start.tzinfo and when.fold == start.fold:
            # The same time zone object: the difference is of wall-clock times (no offsets looked up).
            delta = when - start
            if not delta.days and not delta.seconds:  # 0 <= delta < 1 s: the same wall-clock second
                us = delta.microseconds
                # Six digits (``str`` of 1,000,000 more, its first digit cut: cheaper than a format spec).
                return f"{before}.{str(1_000_000 + us)[1:]}{after}" if us else before + after
    iso = when.isoformat()
    if type(when) is datetime and (when.tzinfo is None or type(when.tzinfo) in _WHOLE_SECOND_ZONES):
        # "YYYY-MM-DDTHH:MM:SS" (years always take four digits), then ".ffffff" unless 0, then the offset.
        _second = (when.replace(microsecond=0), '"' + iso[:19], iso[26 if when.microsecond else 19:] + '"')
    return _json_str(iso)


class PreparedRecord(Mapping[str, object]):
    """The record of an event without extra fields, with its canonical form encoded ahead of the chain.

    It is the same mapping as ``event_record`` gives, and ``seal_line`` writes it to the same bytes: the
    canonical form of such a record is fixed text around its ``alg``, ``prev`` and ``seq`` (sorted keys:
    ``alg`` after ``account``, ``prev`` after ``path``, ``seq`` after ``rule``), so the writer thread encodes
    the rest once, outside the log's lock, and sealing a line is a few byte joins, a MAC and a hash
    (``docs/audit.md``, "Performance").
    """

    # The parts are slots of their own, not a tuple: one object a record for the garbage collector to count.
    __slots__ = ("_after_alg", "_after_prev", "_after_seq", "_event", "_head", "_record")

    def __init__(self, event: AuditEvent, head: bytes, after_alg: bytes, after_prev: bytes, after_seq: bytes) -> None:
        self._event = event
        self._head = head
        self._after_alg = after_alg
        self._after_prev = after_prev
        self._after_seq = after_seq
        self._record: dict[str, object] | None = None

    @property
    def parts(self) -> tuple[bytes, bytes, bytes, bytes]:
        """The canonical form cut where ``alg``'s value, ``prev``'s hex digits and ``seq``'s value go."""
        return self._head, self._after_alg, self._after_prev, self._after_seq

    def _mapping(self) -> dict[str, object]:
        if self._record is None:
            self._record = self._event.to_record()
        return self._record

    def __getitem__(self, key: str) -> object:
        return self._mapping()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._mapping())

    def __len__(self) -> int:
        return len(self._mapping())


def prepared_record(event: AuditEvent, keys: GatewayKeys) -> Mapping[str, object]:
    """``event_record(event, keys)``, as a ``PreparedRecord`` when the event has no extra fields and only text
    or null values (the access events of the request path), else the plain record."""
    if event.extra:
        return event_record(event, keys)
    enc = _json_str  # raises TypeError for a value that is not text: the general path writes it
    seen = _SEEN
    for _ in range(2):
        try:
            text = _PREPARED % (
                seen[event.account],
                seen[event.article],
                "null" if event.client is None else enc(event.client),
                seen[event.country],
                seen[event.decision],
                seen[event.device],
                seen[event.event],
                seen[event.host],
                seen[event.method],
                "null" if event.path is None else enc(event.path),
                seen[event.reason],
                "null" if event.request_id is None else enc(event.request_id),
                seen[event.rule],
                time_json(event.time),
            )
        except KeyError:
            # A recurring value not seen yet (or the table was emptied): encode the ten, then once more.
            # Not text (or not hashable): TypeError, the general path.
            try:
                for value in (event.account, event.article, event.country, event.decision, event.device,
                              event.event, event.host, event.method, event.reason, event.rule):
                    if value not in seen:
                        _seen(value)
            except TypeError:
                return event_record(event, keys)
            continue
        except TypeError:
            return event_record(event, keys)
        head, after_alg, after_prev, after_seq = _utf8(text).split(b"\n")
        return PreparedRecord(event, head, after_alg, after_prev, after_seq)
    return event_record(event, keys)  # the table was full, and emptied while the ten were put in it


class ChainCrypto:
    """The MAC and chain hash for one algorithm family, with the derived key bound in, and the signing key."""

    __slots__ = ("_hash", "_inner", "_key", "_keys", "_mac", "_outer", "_signer", "_sm3_keyed", "alg_json",
                 "algorithm")

    def __init__(self, keys: GatewayKeys, algorithm: AuditAlgorithm) -> None:
        self.algorithm = algorithm
        self.alg_json = json.dumps(algorithm.value).encode("ascii")  # ``alg``'s value as the canonical form has it
        self._keys = keys
        self._key = keys.derive(Purpose.AUDIT_MAC)
        self._signer: AuditSigner | None = None
        self._mac: Callable[[bytes], str]
        self._hash: Callable[[bytes], str]
        if algorithm is AuditAlgorithm.HMAC_SHA256:
            # HMAC (RFC 2104) with the padded key's inner and outer hash states computed once: checking a
            # million records is then two SHA-256 continuations each, not a fresh HMAC object.
            padded = self._key.ljust(64, b"\0")
            self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
            self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))
            self._mac = self._sha256_mac
            self._hash = _sha256_hash
        elif algorithm is AuditAlgorithm.HMAC_SM3:
            # Art. 17 (第十七条): 商用密码 (国密) — SM3 through `cryptography`.
            # The HMAC keyed once and copied for each MAC, as for SHA-256 (a copy costs less than keying).
            self._sm3_keyed = crypto_hmac.HMAC(self._key, hashes.SM3())
            self._mac = self._sm3_mac
            self._hash = _sm3_hash
        else:  # pragma: no cover - StrEnum is closed
            raise ValueError(f"unknown audit algorithm {algorithm!r}")

    def _sha256_mac(self, body: bytes) -> str:
        inner = self._inner.copy()
        inner.update(body)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def _sm3_mac(self, body: bytes) -> str:
        h = self._sm3_keyed.copy()
        h.update(body)
        return h.finalize().hex()

    def mac(self, body: bytes) -> str:
        return self._mac(body)

    def sha256_states(self) -> tuple[HashState, HashState] | None:
        """The HMAC-SHA256 inner and outer states after the padded key (copy before use), None for SM3."""
        return (self._inner, self._outer) if self.algorithm is AuditAlgorithm.HMAC_SHA256 else None

    def line_mac_ok(self, line: bytes) -> bool:
        """Whether ``line`` ends in ``,"mac":"<hex>"}`` and that MAC is this key's over the rest, as written.

        The line on disk is the canonical body with the MAC put before its closing brace, so the body is
        the line without those 74 bytes plus ``}``: no parsing or re-serialising is needed to check it.
        """
        if len(line) < MAC_SUFFIX_LEN + 2 or line[-MAC_SUFFIX_LEN:-66] != b',"mac":"' or line[-2:] != b'"}':
            return False
        expected = self._mac(line[:-MAC_SUFFIX_LEN] + b"}").encode("ascii")
        return hmac.compare_digest(expected, line[-66:-2])

    def hash(self, line: bytes) -> str:
        return self._hash(line)

    @property
    def signer(self) -> AuditSigner:
        """The Ed25519 signing key (derived on first use)."""
        if self._signer is None:
            self._signer = AuditSigner.from_keys(self._keys)
        return self._signer


MAC_SUFFIX_LEN = 74  # len(',"mac":"') + 64 hex digits + len('"}')


def _sha256_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


_SM3_EMPTY = hashes.Hash(hashes.SM3())  # copied, never updated: a fresh context costs more than a copy


def _sm3_hash(line: bytes) -> str:
    d = _SM3_EMPTY.copy()
    d.update(line)
    return d.finalize().hex()


def line_hash(algorithm: AuditAlgorithm, line: bytes) -> str:
    """The chain hash of a whole line (``prev`` of the next record): unkeyed, so anyone can check the links."""
    return _sha256_hash(line) if algorithm is AuditAlgorithm.HMAC_SHA256 else _sm3_hash(line)


def seal_line(record: Mapping[str, object], seq: int, prev: str, crypto: ChainCrypto, *, sign: bool = False) -> bytes:
    """The line (without newline) for ``record`` at position ``seq`` after a record hashing to ``prev``.

    ``sign`` (daily seals): the record also carries ``signature``, the Ed25519 signature of its canonical form
    without it, so the exported public key vouches for this line and, through ``prev``, every line before it.
    """
    if not sign and type(record) is PreparedRecord:
        text = b"".join((record._head, crypto.alg_json, record._after_alg, prev.encode("ascii"), record._after_prev,
                         b"%d" % seq, record._after_seq))
        return text[:-1] + b',"mac":"' + crypto.mac(text).encode("ascii") + b'"}'
    body = dict(record)
    for name in CHAIN_FIELDS:
        body.pop(name, None)
    body.pop(SIGNATURE_FIELD, None)
    body["seq"] = seq
    body["prev"] = prev
    body["alg"] = crypto.algorithm.value
    if sign:
        body[SIGNATURE_FIELD] = crypto.signer.sign(canonical(body))
    text = canonical(body)
    return text[:-1] + b',"mac":"' + crypto.mac(text).encode("ascii") + b'"}'


def seal_lines(records: Iterable[Mapping[str, object]], seq: int, prev: str, crypto: ChainCrypto,
               out: list[bytes]) -> tuple[int, str]:
    """``seal_line`` for each of ``records`` in turn, chained from ``seq`` and ``prev``: the lines are appended to
    ``out``; returns the ``seq`` and ``prev`` of the record after them.

    The same bytes as ``seal_line`` record by record (``tests/audit/test_prepared_records.py``). A batch of
    prepared records (the request path's) is sealed in one loop: the MAC's two SHA-256 continuations and the
    chain hash inline, ``prev`` kept as the bytes the next line holds.
    """
    alg = crypto.alg_json
    inner = crypto.sha256_states()
    prev_hex = prev.encode("ascii")
    append = out.append
    for record in records:
        if type(record) is PreparedRecord:
            body = b"".join((record._head, alg, record._after_alg, prev_hex, record._after_prev, b"%d" % seq,
                             record._after_seq))
            if inner is not None:
                h = inner[0].copy()
                h.update(body)
                o = inner[1].copy()
                o.update(h.digest())
                line = b"".join((body[:-1], _MAC_OPEN, o.hexdigest().encode("ascii"), _MAC_CLOSE))
                prev_hex = sha256(line).hexdigest().encode("ascii")
            else:
                line = b"".join((body[:-1], _MAC_OPEN, crypto.mac(body).encode("ascii"), _MAC_CLOSE))
                prev_hex = crypto.hash(line).encode("ascii")
        else:
            line = seal_line(record, seq, prev_hex.decode("ascii"), crypto)
            prev_hex = crypto.hash(line).encode("ascii")
        append(line)
        seq += 1
    return seq, prev_hex.decode("ascii")


_MAC_OPEN = b',"mac":"'
_MAC_CLOSE = b'"}'


SIGNATURE_FIELD = "signature"  # on daily seals and the head anchor: Ed25519, hex


def signature_ok(record: Mapping[str, object], key: AuditVerifyKey) -> bool | None:
    """Whether a parsed record's (or anchor's) ``signature`` is the signing key's over the rest of it, without
    ``mac``; None when it carries no signature (seals written before signatures)."""
    body = dict(record)
    body.pop("mac", None)
    signature = body.pop(SIGNATURE_FIELD, None)
    if signature is None:
        return None
    try:
        message = canonical(body)
    except (ValueError, TypeError, RecursionError):
        return False
    return key.verify(message, signature)


@dataclass(frozen=True, slots=True)
class Head:
    """What the head anchor says: the newest record is ``seq`` in ``file``, and its line hashes to ``hash``."""

    file: str
    seq: int
    hash: str


def head_line(head: Head, time: datetime, crypto: ChainCrypto) -> bytes:
    """The head anchor's content: a MACed line like a record (never one: no ``prev``), then a line holding the
    Ed25519 signature of that first line's exact bytes, so the exported key vouches for every byte of both."""
    body: dict[str, object] = {"event": HEAD_EVENT, "file": head.file, "seq": head.seq, "hash": head.hash,
                               "alg": crypto.algorithm.value, "time": time.isoformat()}
    text = canonical(body)
    first = text[:-1] + b',"mac":"' + crypto.mac(text).encode("ascii") + b'"}'
    return first + b"\n" + canonical({SIGNATURE_FIELD: crypto.signer.sign(first)}) + b"\n"


def _head_lines(data: bytes) -> tuple[bytes, bytes | None] | None:
    """(the anchor line, its signature line or None when written before signatures), or None when malformed."""
    lines = data.split(b"\n")
    if len(lines) == 2 and lines[1] == b"":
        return lines[0], None
    if len(lines) == 3 and lines[2] == b"":
        return lines[0], lines[1]
    return None


def _head_fields(first: bytes) -> Head | None:
    obj = json.loads(first.decode("utf-8"))
    if not isinstance(obj, dict) or obj.get("event") != HEAD_EVENT:
        return None
    file, seq, digest = obj.get("file"), obj.get("seq"), obj.get("hash")
    if not (isinstance(file, str) and isinstance(digest, str)):
        return None
    if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(obj.get("alg"), str):
        return None
    return Head(file, seq, digest)


def _head_signature_ok(first: bytes, second: bytes, key: AuditVerifyKey) -> bool:
    obj = json.loads(second.decode("utf-8"))
    if not isinstance(obj, dict) or set(obj) != {SIGNATURE_FIELD} or canonical(obj) != second:
        return False
    return key.verify(first, obj[SIGNATURE_FIELD])


def parse_head(data: bytes, keys_crypto: Callable[[AuditAlgorithm], ChainCrypto]) -> Head | None:
    """The anchor in ``data``, or None when it is malformed, its MAC is wrong, or it carries a signature that is
    wrong (never raises)."""
    try:
        parts = _head_lines(data)
        if parts is None:
            return None
        first, second = parts
        head = _head_fields(first)
        if head is None:
            return None
        obj = json.loads(first)
        mac = obj.pop("mac", None)
        if not isinstance(mac, str) or HEX_DIGEST.fullmatch(mac) is None:
            return None
        crypto = keys_crypto(AuditAlgorithm(obj["alg"]))
        text = canonical(obj)
        if first != text[:-1] + b',"mac":"' + mac.encode("ascii") + b'"}':
            return None
        if not hmac.compare_digest(crypto.mac(text).encode("ascii"), mac.encode("ascii")):
            return None
        if second is not None and not _head_signature_ok(first, second, crypto.signer.verify_key()):
            return None
        return head
    except (ValueError, RecursionError, TypeError, OverflowError):
        return None


def parse_signed_head(data: bytes, key: AuditVerifyKey) -> tuple[Head | None, str | None]:
    """The anchor in ``data`` checked by its signature alone (the exported key has no MAC key): (head, None), or
    (None, why) when it is malformed, unsigned (written before signatures) or its signature is wrong. Never raises."""
    try:
        parts = _head_lines(data)
        head = None if parts is None else _head_fields(parts[0])
        if parts is None or head is None:
            return None, "not a well-formed head anchor"
        first, second = parts
        if second is None:
            return None, ("the head anchor is not signed (written before audit signatures): check this log with "
                          "the gateway key, or let the gateway write once so that it signs the anchor")
        if not _head_signature_ok(first, second, key):
            return None, "the head anchor's signature does not verify with this key"
        return head, None
    except (ValueError, RecursionError, TypeError, OverflowError):
        return None, "not a well-formed head anchor"


def link_record(time: datetime, file: str, prev_file: str | None) -> dict[str, object]:
    return chain_record(LINK_EVENT, time, file=file, prev_file=prev_file)


def seal_record(time: datetime, file: str) -> dict[str, object]:
    return chain_record(SEAL_EVENT, time, file=file)


def chain_record(event: str, time: datetime, **extra: str | int | bool | None) -> dict[str, object]:
    """A record the log writes about itself (link, seal, prune, lost, repair): the documented fields, then ``extra``."""
    return AuditEvent(event=event, time=time, article="Art. 20", extra=extra).to_record()


@dataclass(frozen=True, slots=True)
class Tail:
    """Where a chain ends: the next record's ``seq`` and ``prev``."""

    next_seq: int
    prev: str


@dataclass(frozen=True, slots=True)
class ParsedLine:
    record: dict[str, object]
    seq: int
    prev: str
    algorithm: AuditAlgorithm
    mac_ok: bool


HEX_DIGEST = re.compile(r"[0-9a-f]{64}")  # `mac` and `prev`: lower-case hex of a 32-byte digest (both families)
HEX_DIGEST_BYTES = re.compile(rb"[0-9a-f]{64}")


def parse_line(line: bytes, keys_crypto: Callable[[AuditAlgorithm], ChainCrypto]) -> ParsedLine | None:
    """Parse one line; ``None`` when it is not a well-formed canonical record (so: modified).

    Never raises for any content: an edited line (non-hex MAC, lone surrogates, nesting deep
    enough to exhaust the recursion limit, ...) is a malformed record, so neither the writer nor
    ``verify`` can be stopped by one line.
    """
    try:
        return _parse_line(line, keys_crypto)
    except (ValueError, RecursionError, TypeError, OverflowError):
        # ValueError covers JSON and Unicode decode/encode errors (lone surrogates, huge integers).
        return None


def _parse_line(line: bytes, keys_crypto: Callable[[AuditAlgorithm], ChainCrypto]) -> ParsedLine | None:
    record = json.loads(line.decode("utf-8"))
    if not isinstance(record, dict):
        return None
    mac = record.pop("mac", None)
    seq = record.get("seq")
    prev = record.get("prev")
    alg = record.get("alg")
    if not isinstance(alg, str):
        return None
    if not isinstance(mac, str) or not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(prev, str):
        return None
    # Only lower-case hex of the digest's length is compared (compare_digest refuses non-ASCII text).
    if HEX_DIGEST.fullmatch(mac) is None or HEX_DIGEST.fullmatch(prev) is None:
        return None
    try:
        algorithm = AuditAlgorithm(alg)
    except ValueError:
        return None
    text = canonical(record)
    if line != text[:-1] + b',"mac":"' + mac.encode("ascii") + b'"}':
        return None  # not canonical: someone re-serialised or edited it
    crypto = keys_crypto(algorithm)
    mac_ok = hmac.compare_digest(crypto.mac(text).encode("ascii"), mac.encode("ascii"))
    return ParsedLine(record, seq, prev, algorithm, mac_ok)


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What a successful verification saw."""

    files: int
    count: int  # records, chain records (link, seal) included
    first_time: datetime | None
    last_time: datetime | None
    first_seq: int | None
    last_seq: int | None
    tail: Tail | None  # where the next record would go


def split_lines(data: bytes) -> tuple[list[bytes], bool]:
    """The complete lines of ``data`` and whether an incomplete last line followed them."""
    lines = data.split(b"\n")
    partial = lines.pop() != b""
    return lines, partial


def record_time(rec: Mapping[str, object]) -> datetime | None:
    """The record's ``time`` field as an aware datetime, or None if absent or malformed (or without an offset)."""
    value = rec.get("time")
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.utcoffset() is not None else None
