"""The tamper-evident form of audit records (Art. 20): canonical lines, the hash chain, the MAC, and
verification of a sequence of files.

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
- ``mac``: the HMAC of the canonical form under ``keys.derive(Purpose.AUDIT_MAC)``.

Files are daily (``audit-YYYY-MM-DD.jsonl`` in ``gateway.timezone``). Each file starts with an
``audit.link`` record naming the file itself and the file before it (``prev_file``); a closed
day ends with an ``audit.seal`` record. So an edit, a deleted, inserted or reordered line, a
deleted day and a truncated day are all found: someone without the key cannot make a valid MAC.
Pruning (only past ``retention_days``, only with ``audit.prune``) is announced first by an
``audit.prune`` record naming the files, so the oldest remaining file's link is still explained.

What the chain alone cannot show is the removal of the newest records of the newest file
(nothing comes after them); backups and the syslog mirror are the outside anchors for that.

This module is pure: no clock, no files; ``verify_files`` takes (name, bytes) pairs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac

from govgate.core.audit_event import AuditEvent
from govgate.core.keys import GatewayKeys, Purpose
from govgate.core.policy.model import AuditAlgorithm
from govgate.errors import AuditChainBroken

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
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
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
    """The record for ``event`` (contract §7 fields), secrets replaced by a keyed hash.

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


class ChainCrypto:
    """The MAC and chain hash for one algorithm family, with the derived key bound in."""

    __slots__ = ("_hash", "_key", "_mac", "algorithm")

    def __init__(self, keys: GatewayKeys, algorithm: AuditAlgorithm) -> None:
        self.algorithm = algorithm
        self._key = keys.derive(Purpose.AUDIT_MAC)
        self._mac: Callable[[bytes], str]
        self._hash: Callable[[bytes], str]
        if algorithm is AuditAlgorithm.HMAC_SHA256:
            key = self._key
            self._mac = lambda body: hmac.new(key, body, hashlib.sha256).hexdigest()
            self._hash = lambda line: hashlib.sha256(line).hexdigest()
        elif algorithm is AuditAlgorithm.HMAC_SM3:
            # Art. 17 (第十七条): 商用密码 (国密) — SM3 through `cryptography`.
            self._mac = self._sm3_mac
            self._hash = _sm3_hash
        else:  # pragma: no cover - StrEnum is closed
            raise ValueError(f"unknown audit algorithm {algorithm!r}")

    def _sm3_mac(self, body: bytes) -> str:
        h = crypto_hmac.HMAC(self._key, hashes.SM3())
        h.update(body)
        return h.finalize().hex()

    def mac(self, body: bytes) -> str:
        return self._mac(body)

    def hash(self, line: bytes) -> str:
        return self._hash(line)


def _sm3_hash(line: bytes) -> str:
    d = hashes.Hash(hashes.SM3())
    d.update(line)
    return d.finalize().hex()


def seal_line(record: Mapping[str, object], seq: int, prev: str, crypto: ChainCrypto) -> bytes:
    """The line (without newline) for ``record`` at position ``seq`` after a record hashing to ``prev``."""
    body = dict(record)
    for name in CHAIN_FIELDS:
        body.pop(name, None)
    body["seq"] = seq
    body["prev"] = prev
    body["alg"] = crypto.algorithm.value
    text = canonical(body)
    return text[:-1] + b',"mac":"' + crypto.mac(text).encode("ascii") + b'"}'


@dataclass(frozen=True, slots=True)
class Head:
    """What the head anchor says: the newest record is ``seq`` in ``file``, and its line hashes to ``hash``."""

    file: str
    seq: int
    hash: str


def head_line(head: Head, time: datetime, crypto: ChainCrypto) -> bytes:
    """The head anchor's content: canonical JSON with a MAC, like a record (but never one: no ``prev``)."""
    body = {"event": HEAD_EVENT, "file": head.file, "seq": head.seq, "hash": head.hash,
            "alg": crypto.algorithm.value, "time": time.isoformat()}
    text = canonical(body)
    return text[:-1] + b',"mac":"' + crypto.mac(text).encode("ascii") + b'"}\n'


def parse_head(data: bytes, keys_crypto: Callable[[AuditAlgorithm], ChainCrypto]) -> Head | None:
    """The anchor in ``data``, or None when it is malformed or its MAC is wrong (never raises)."""
    try:
        obj = json.loads(data.decode("utf-8"))
        if not isinstance(obj, dict) or obj.get("event") != HEAD_EVENT:
            return None
        mac, file, seq, digest = obj.pop("mac", None), obj.get("file"), obj.get("seq"), obj.get("hash")
        if not (isinstance(mac, str) and isinstance(file, str) and isinstance(digest, str)):
            return None
        if not isinstance(seq, int) or isinstance(seq, bool) or HEX_DIGEST.fullmatch(mac) is None:
            return None
        alg = obj.get("alg")
        if not isinstance(alg, str):
            return None
        crypto = keys_crypto(AuditAlgorithm(alg))
        text = canonical(obj)
        if data.rstrip(b"\n") != text[:-1] + b',"mac":"' + mac.encode("ascii") + b'"}':
            return None
        if not hmac.compare_digest(crypto.mac(text).encode("ascii"), mac.encode("ascii")):
            return None
        return Head(file, seq, digest)
    except (ValueError, RecursionError, TypeError, OverflowError):
        return None


def link_record(time: datetime, file: str, prev_file: str | None) -> dict[str, object]:
    return chain_record(LINK_EVENT, time, file=file, prev_file=prev_file)


def seal_record(time: datetime, file: str) -> dict[str, object]:
    return chain_record(SEAL_EVENT, time, file=file)


def chain_record(event: str, time: datetime, **extra: str | int | bool | None) -> dict[str, object]:
    """A record the log writes about itself (link, seal, prune, lost, repair): contract fields, then ``extra``."""
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


class _Cryptos:
    def __init__(self, keys: GatewayKeys) -> None:
        self._keys = keys
        self._by_alg: dict[AuditAlgorithm, ChainCrypto] = {}

    def __call__(self, algorithm: AuditAlgorithm) -> ChainCrypto:
        crypto = self._by_alg.get(algorithm)
        if crypto is None:
            crypto = self._by_alg[algorithm] = ChainCrypto(self._keys, algorithm)
        return crypto


def split_lines(data: bytes) -> tuple[list[bytes], bool]:
    """The complete lines of ``data`` and whether an incomplete last line followed them."""
    lines = data.split(b"\n")
    partial = lines.pop() != b""
    return lines, partial


def verify_files(
    files: Iterable[tuple[str, bytes]],
    keys: GatewayKeys,
    algorithm: AuditAlgorithm | None = None,
    *,
    head: bytes | None = None,
) -> VerifyReport:
    """Verify daily files given in order as (name, content). Raises ``AuditChainBroken`` at the first broken record.

    Every record names its own algorithm (``alg``) and is checked with it, so a log that spans a
    change of ``audit.algorithm`` verifies; both are keyed, so naming the other one gains a forger
    nothing. ``algorithm`` (the policy's current choice) is therefore only informative.

    ``head`` is the head anchor's content (``HEAD_NAME``), required once there are records: the
    record it names must be in the log as it names it, so cutting the newest records is found.
    """
    del algorithm
    cryptos = _Cryptos(keys)
    anchor = None if head is None else parse_head(head, cryptos)
    verifier = _Verifier(cryptos, anchor)
    for name, data in files:  # the records first: a broken record is named before a broken anchor
        verifier.file(name, data)
    if head is not None and anchor is None:
        raise AuditChainBroken(HEAD_NAME, 1, f"{Tamper.MODIFIED}: the head anchor does not match its MAC")
    report = verifier.finish()
    if head is None and report.count:
        raise AuditChainBroken(HEAD_NAME, 1, f"{Tamper.MISSING}: the head anchor (the newest record's seq and hash) "
                                             "is missing")
    return report


class _Verifier:
    """Walks the files in order, keeping where the chain should continue."""

    def __init__(self, cryptos: _Cryptos, head: Head | None = None) -> None:
        self.cryptos = cryptos
        self.head = head
        self.head_seen = False
        self.pruned: set[str] = set()  # files an `audit.prune` record announced
        self.first_link: tuple[str, str | None] | None = None  # (oldest file, the prev_file it names)
        self.expected_seq: int | None = None
        self.last_hash: str | None = None
        self.prev_name: str | None = None
        self.prev_sealed = False
        self.prev_lines = 0
        self.files = 0
        self.count = 0
        self.first_time: datetime | None = None
        self.last_time: datetime | None = None
        self.first_seq: int | None = None

    def file(self, name: str, data: bytes) -> None:
        if self.prev_name is not None and not self.prev_sealed:
            raise AuditChainBroken(
                self.prev_name, self.prev_lines + 1, f"{Tamper.TRUNCATED}: the closed day ends without its seal record"
            )
        lines, partial = split_lines(data)
        if not lines and not partial:
            raise AuditChainBroken(name, 1, f"{Tamper.TRUNCATED}: the file is empty")
        sealed = False
        for index in range(len(lines)):
            if sealed:
                raise AuditChainBroken(name, index + 1, f"{Tamper.INSERTED}: a record after the day's seal")
            sealed = self.record(name, lines, index)
        if partial:
            raise AuditChainBroken(name, len(lines) + 1, f"{Tamper.TRUNCATED}: the last line is incomplete")
        self.files += 1
        self.prev_name = name
        self.prev_sealed = sealed
        self.prev_lines = len(lines)

    def record(self, name: str, lines: list[bytes], index: int) -> bool:
        """Check one record; True when it is the day's seal."""
        line, lineno = lines[index], index + 1
        parsed = parse_line(line, self.cryptos)
        if parsed is None:
            raise AuditChainBroken(name, lineno, f"{Tamper.MODIFIED}: not a well-formed record")
        if not parsed.mac_ok:
            raise AuditChainBroken(name, lineno, self._bad_mac(lines, index))
        rec = parsed.record
        event = rec.get("event")
        if lineno == 1:
            self._link(name, rec)
        elif event == LINK_EVENT:
            raise AuditChainBroken(name, lineno, f"{Tamper.INSERTED}: a link record in the middle of a file")
        if self.expected_seq is not None and parsed.seq != self.expected_seq:
            raise AuditChainBroken(name, lineno, self._bad_seq(lines, index, parsed.seq))
        if self.last_hash is not None and parsed.prev != self.last_hash:
            raise AuditChainBroken(name, lineno, f"{Tamper.INSERTED}: the record does not link to the record before it")
        starts_chain = self.last_hash is None and self.first_link is not None and self.first_link[1] is None
        if starts_chain and (parsed.prev != GENESIS or parsed.seq != 0):
            raise AuditChainBroken(name, lineno, f"{Tamper.MISSING}: the first record does not start the chain")
        if event == SEAL_EVENT and rec.get("file") != name:
            raise AuditChainBroken(name, lineno, f"{Tamper.MODIFIED}: the seal names another file")
        if event == DAMAGED_EVENT:
            # The writer found the log tampered with and carried on; what it found stays a finding (usually a
            # gap or an edit before this record is named first). Without this, a cut made together with
            # deleting the head anchor would verify once the gateway had started again.
            raise AuditChainBroken(name, lineno, f"{Tamper.MISSING}: records may be missing or altered: the gateway "
                                                 f"found {rec.get('found')!r} in {rec.get('file')!r}")
        if event == PRUNE_EVENT and isinstance(files := rec.get("files"), str):
            self.pruned.update(f for f in files.split(",") if f)
        self.last_hash = self.cryptos(parsed.algorithm).hash(line)
        head = self.head
        if head is not None and parsed.seq == head.seq:
            if head.file != name or not hmac.compare_digest(head.hash, self.last_hash):
                raise AuditChainBroken(name, lineno, f"{Tamper.MODIFIED}: not the record the head anchor names "
                                                     f"(seq {head.seq} in {head.file})")
            self.head_seen = True
        self.expected_seq = parsed.seq + 1
        if self.first_seq is None:
            self.first_seq = parsed.seq
        self.count += 1
        t = record_time(rec)
        if t is not None:
            self.first_time = self.first_time or t
            self.last_time = t
        return event == SEAL_EVENT

    def _link(self, name: str, rec: Mapping[str, object]) -> None:
        """A file's first record links it to the file before it."""
        if rec.get("event") != LINK_EVENT:
            raise AuditChainBroken(name, 1, f"{Tamper.MISSING}: the file does not start with its link record")
        if rec.get("file") != name:
            said = rec.get("file")
            raise AuditChainBroken(name, 1, f"{Tamper.MODIFIED}: the file was renamed (it says {said!r})")
        link_prev = rec.get("prev_file")
        if link_prev is not None and not isinstance(link_prev, str):
            raise AuditChainBroken(name, 1, f"{Tamper.MODIFIED}: bad prev_file")
        prev_name = self.prev_name
        if prev_name is None:
            self.first_link = (name, link_prev)
        elif link_prev != prev_name:
            if link_prev is None:
                raise AuditChainBroken(name, 1, f"{Tamper.INSERTED}: a second chain starts here")
            if link_prev > prev_name:
                raise AuditChainBroken(name, 1, f"{Tamper.MISSING}: the file before this one, {link_prev}, is missing")
            raise AuditChainBroken(name, 1, f"{Tamper.INSERTED}: the file {prev_name} does not belong here")

    def finish(self) -> VerifyReport:
        if self.prev_name is not None and self.prev_sealed:
            # The writer opens the next day's file in the same locked step as it seals a day.
            raise AuditChainBroken(
                self.prev_name, self.prev_lines + 1, f"{Tamper.MISSING}: the file after this sealed day is missing"
            )
        first = self.first_link
        if first is not None and first[1] is not None and first[1] not in self.pruned:
            raise AuditChainBroken(
                first[0], 1, f"{Tamper.MISSING}: the file before this one, {first[1]}, is missing (never pruned)"
            )
        head = self.head
        if head is not None and not self.head_seen:
            last = -1 if self.expected_seq is None else self.expected_seq - 1
            if head.seq > last:
                name, line = (self.prev_name, self.prev_lines + 1) if self.prev_name is not None else (head.file, 1)
                raise AuditChainBroken(name, line, f"{Tamper.TRUNCATED}: the log ends at seq {last}, but the head "
                                                   f"anchor names seq {head.seq} in {head.file}: "
                                                   f"{head.seq - last} newest record(s) are missing")
            raise AuditChainBroken(HEAD_NAME, 1, f"{Tamper.MODIFIED}: the head anchor names seq {head.seq}, "
                                                 "which is not in the log")
        tail = None
        if self.expected_seq is not None and self.last_hash is not None:
            tail = Tail(self.expected_seq, self.last_hash)
        return VerifyReport(
            files=self.files,
            count=self.count,
            first_time=self.first_time,
            last_time=self.last_time,
            first_seq=self.first_seq,
            last_seq=None if self.expected_seq is None else self.expected_seq - 1,
            tail=tail,
        )

    def _bad_mac(self, lines: list[bytes], index: int) -> str:
        """A record with a wrong MAC: forged and slipped in (the next record links past it), or edited."""
        nxt = next(_later(lines, index, self.cryptos, limit=1), None)
        if (
            nxt is not None
            and self.last_hash is not None
            and nxt.prev == self.last_hash
            and nxt.seq == self.expected_seq
        ):
            return f"{Tamper.INSERTED}: a record without a valid MAC (forged without the key)"
        return f"{Tamper.MODIFIED}: the record does not match its MAC"

    def _bad_seq(self, lines: list[bytes], index: int, found: int) -> str:
        expected = self.expected_seq
        assert expected is not None
        if found < expected:
            return f"{Tamper.REORDERED}: record #{found} appears after record #{expected - 1}"
        if any(p.seq == expected for p in _later(lines, index, self.cryptos)):
            return f"{Tamper.REORDERED}: record #{found} appears before record #{expected}"
        gap = found - expected
        return f"{Tamper.MISSING}: {gap} record{'s' if gap != 1 else ''} before this one (#{expected}–#{found - 1})"


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


def _later(
    lines: list[bytes], index: int, cryptos: Callable[[AuditAlgorithm], ChainCrypto], limit: int = 64
) -> Iterator[ParsedLine]:
    for line in lines[index + 1 : index + 1 + limit]:
        parsed = parse_line(line, cryptos)
        if parsed is not None and parsed.mac_ok:
            yield parsed
