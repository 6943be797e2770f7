"""Checking an audit log line by line (Art. 20): what `verify` reports and what `show` and `report` trust.

Art. 20 (第二十条): the integrity of access logs is assured — any edit, deletion, insertion or
reordering of records, a deleted day or a truncated day is found, at the first broken record
(``file:line``). ``ChainWalk`` takes the log one line at a time, in order, so a log of any size is
checked in constant memory; the caller (``govgate.audit.verify``) reads the files.

Two keys can check a log (``govgate.core.audit_keys``):

- the gateway key: each record's MAC (so each record is known genuine by itself), the chain
  (``seq`` and ``prev``), the links and seals between days, the signatures where present, and the head
  anchor's MAC;
- the exported public key: the same chain, and the Ed25519 signatures on the daily seals and the head
  anchor. A signature vouches for its line and, through the ``prev`` hashes, for every line before
  it, so nothing can be changed without breaking a link or a signature. The head anchor must be
  signed, and a record after the newest one it names is refused: no signature covers it.

A record is checked from its raw bytes: the MAC covers the line as written (the body is the line
without its ``,"mac":"…"`` suffix), and ``seq``, ``prev``, ``alg``, ``event`` and ``time`` are read where
the canonical form puts them; only records the chain itself needs (links, seals, prunes, policy
records) and broken lines are parsed as JSON. That keeps a million records to seconds.

``collect=False`` raises ``AuditChainBroken`` at the first problem (``verify``). ``collect=True``
notes every problem (``findings``) and goes on, for `show` and `report` to mark what they print.
With the public key, lines that no signature covers because of a problem are noted as
``unverified`` ranges (by position among the lines walked).

Pure: no files, no clock. ``kept`` (optional) tells the SHA-256 of a kept policy text by its name.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from govgate.core.audit_chain import (
    DAMAGED_EVENT,
    GENESIS,
    HEAD_NAME,
    LINK_EVENT,
    PRUNE_EVENT,
    SEAL_EVENT,
    ChainCrypto,
    Head,
    ParsedLine,
    Tail,
    Tamper,
    VerifyReport,
    line_hash,
    parse_head,
    parse_line,
    parse_signed_head,
    signature_ok,
    split_lines,
)
from govgate.core.audit_keys import AuditKey, AuditVerifyKey, verify_key_of
from govgate.core.keys import GatewayKeys
from govgate.core.policy.model import AuditAlgorithm
from govgate.errors import AuditChainBroken

LOOKAHEAD = 64  # lines after a broken one looked at to tell "inserted" from "modified", "reordered" from "missing"
# Events whose records are read whole: the chain needs them (links, seals, prunes, kept policies), and the gateway's
# starts and stops tell when which policy was in force.
_PARSED = ("audit.", "policy.", "gateway.")
_PARSED_BYTES = tuple(p.encode("ascii") for p in _PARSED)
KEPT_POLICY = re.compile(r"policies/([0-9a-f]{64})\.yaml")  # `policy_text` of policy records: the kept text's name


@dataclass(frozen=True, slots=True)
class Finding:
    """A problem found: ``file:line`` and what, and the position of that line among every line walked
    (``ordinal``, from 0; -1 for the head anchor)."""

    file: str
    line: int
    what: str
    ordinal: int


@dataclass(frozen=True, slots=True)
class Unverified:
    """Lines (by ordinal, ``start`` inclusive, ``end`` exclusive) that no signature vouches for (public key only)."""

    start: int
    end: int
    why: str


class _Fields(NamedTuple):
    seq: int
    prev: str
    alg: AuditAlgorithm
    event: str | None
    time: bytes | None


_ALGS = {a.value.encode("ascii"): a for a in AuditAlgorithm}


def raw_fields(line: bytes) -> _Fields | None:
    """``seq``, ``prev``, ``alg``, ``event`` and ``time`` read from where a canonical line has them, or None.

    In canonical JSON every quote inside a string is escaped, so ``"seq":`` can only be a key; records never
    nest objects with these keys. Only trusted once the line is vouched for (MAC, or a link to a signature):
    a line that is not what the gateway wrote fails its MAC, or its hash breaks the chain.
    """
    a = line.find(b'"alg":"')
    if a < 0:
        return None
    a += 7
    alg = _ALGS.get(line[a:line.find(b'"', a)])
    i = line.find(b'"seq":')
    p = line.find(b'"prev":"')
    if alg is None or i < 0 or p < 0:
        return None
    i += 6
    k = line.find(b",", i)
    digits = line[i:k]
    if k < 0 or not digits.isdigit() or len(digits) > 18:
        return None
    e = line.find(b'"event":"')
    event = None
    if e >= 0:
        e += 9
        event = line[e:line.find(b'"', e)].decode("utf-8", "replace")
    t = line.find(b'"time":"')
    time = None
    if t >= 0:
        t += 8
        time = line[t:line.find(b'"', t)]
    return _Fields(int(digits), line[p + 8:p + 72].decode("latin-1"), alg, event, time)


def _time(raw: bytes | None) -> datetime | None:
    if raw is None:
        return None
    try:
        when = datetime.fromisoformat(raw.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return None
    return when if when.utcoffset() is not None else None


class _Cryptos:
    def __init__(self, keys: GatewayKeys) -> None:
        self._keys = keys
        self._by_alg: dict[AuditAlgorithm, ChainCrypto] = {}

    def __call__(self, algorithm: AuditAlgorithm) -> ChainCrypto:
        crypto = self._by_alg.get(algorithm)
        if crypto is None:
            crypto = self._by_alg[algorithm] = ChainCrypto(self._keys, algorithm)
        return crypto


class _Problem(Exception):
    """Raised inside a line's checks; ``ChainWalk`` raises or notes it. ``unsound``: the line itself is not a
    record as the gateway wrote it, so nothing in it (``seq``, ``prev``) is believed when the walk goes on."""

    def __init__(self, file: str, line: int, what: str, ordinal: int, *, unsound: bool = False) -> None:
        super().__init__(what)
        self.finding = Finding(file, line, what, ordinal)
        self.unsound = unsound


class ChainWalk:
    """Checks a log fed to it in order: ``begin_file``, ``line`` for each complete line, ``end_file``; then
    ``finish``. ``head`` is the head anchor's content (None: there is none)."""

    def __init__(self, key: AuditKey, head: bytes | None, *, collect: bool = False, whole_log: bool = True,
                 kept: Callable[[str], str | None] | None = None, macs: bool = True,
                 seen: Callable[[dict[str, object]], None] | None = None) -> None:
        self.collect = collect
        self.seen = seen  # told every parsed chain, policy and gateway record (`show` builds its timeline from them)
        self.file_starts: dict[str, int] = {}  # file → ordinal of its first line
        self.whole_log = whole_log  # False: the walk starts at a later file (`show`), not at the oldest
        self.kept = kept
        self.verify_key: AuditVerifyKey = verify_key_of(key)
        self.cryptos: _Cryptos | None = _Cryptos(key) if isinstance(key, GatewayKeys) else None
        # Checking every record's MAC (the gateway key) names a broken record exactly. Without (the public key,
        # or the gateway key's quick first pass), the signatures vouch for the chain; a quick pass that finds
        # anything is done again with MACs (``govgate.audit.verify.walk_dir``).
        self.macs = macs and self.cryptos is not None
        self.head_given = head is not None
        self.head: Head | None = None
        self.head_problem: str | None = None
        if head is not None:
            if self.cryptos is not None:
                self.head = parse_head(head, self.cryptos)
                if self.head is None:
                    self.head_problem = f"{Tamper.MODIFIED}: the head anchor does not match its MAC"
            if self.cryptos is None or not self.macs:
                signed, why = parse_signed_head(head, self.verify_key)
                if signed is None and self.head_problem is None:
                    self.head = None
                    word = Tamper.MISSING if why and "not signed" in why else Tamper.MODIFIED
                    self.head_problem = f"{word}: {why}"
                elif self.cryptos is None:
                    self.head = signed
        self.needle = b""  # `"prev":"<hash of the line before>"`: a line holding it links to the one before
        self.findings: list[Finding] = []
        self.unverified: list[Unverified] = []
        self.head_seen = False
        self.head_ordinal = -1
        self.after_head: Finding | None = None  # the first record after the one the anchor names
        self.pruned: set[str] = set()
        self.first_link: tuple[str, str | None] | None = None
        self.expected_seq: int | None = None
        self.last_hash: str | None = None
        self.before_last_hash: str | None = None
        self.last_at: tuple[int, int] | None = None  # (line, ordinal) of the line before, in `last_name`
        self.last_name = ""
        self.file_start = 0  # ordinal of the current file's first line
        self.last_line: bytes | None = None  # the line before, when it took the quick way (its time is read at the end)
        self.prev_name: str | None = None
        self.prev_sealed = False
        self.prev_lines = 0
        self.name = ""
        self.sealed = False
        self.files = 0
        self.count = 0
        self.ordinal = 0  # lines walked so far
        self.segment_start = 0  # public key: the first line after the last signature that verified
        self.first_time: datetime | None = None
        self.last_time_raw: bytes | None = None
        self.first_seq: int | None = None

    @property
    def public(self) -> bool:
        """Relying on signatures, not MACs: the exported public key, or the gateway key's quick pass."""
        return not self.macs

    # -- problems ---------------------------------------------------------------------------------

    def _note(self, finding: Finding) -> None:
        if not self.collect:
            raise AuditChainBroken(finding.file, finding.line, finding.what)
        self.findings.append(finding)
        if self.public and finding.ordinal >= 0:
            if self.segment_start < finding.ordinal:
                self.unverified.append(Unverified(self.segment_start, finding.ordinal,
                                                  f"no signature vouches for it: the chain breaks at "
                                                  f"{finding.file}:{finding.line}"))
            self.segment_start = max(self.segment_start, finding.ordinal + 1)

    # -- the walk ---------------------------------------------------------------------------------

    def begin_file(self, name: str) -> None:
        if self.prev_name is not None and not self.prev_sealed:
            self._note(Finding(self.prev_name, self.prev_lines + 1,
                               f"{Tamper.TRUNCATED}: the closed day ends without its seal record", self.ordinal))
        self.last_name = self.name
        self.name = name
        self.file_start = self.ordinal
        self.file_starts[name] = self.ordinal
        self.sealed = False

    def end_file(self, lines: int, partial: bool) -> None:
        if lines == 0 and not partial:
            self._note(Finding(self.name, 1, f"{Tamper.TRUNCATED}: the file is empty", self.ordinal))
        if partial:
            self._note(Finding(self.name, lines + 1, f"{Tamper.TRUNCATED}: the last line is incomplete",
                               self.ordinal))
        self.files += 1
        self.prev_name = self.name
        self.prev_sealed = self.sealed
        self.prev_lines = lines

    def lines(self, lines: Sequence[bytes], start: int, stop: int, lineno: int) -> None:
        """Check ``lines[start:stop]``, the first being line ``lineno`` of the current file (the lines after
        ``stop``, up to ``LOOKAHEAD``, are only looked at to name a problem)."""
        if self.macs:
            for index in range(start, stop):
                self.line(lines, index, lineno + index - start)
            return
        index = start
        sha256 = hashlib.sha256
        while index < stop:
            # The quick way, in local variables, for the ordinary records that link to the line before: the chain's
            # signatures vouch for them, nothing in them needs reading. Chain and policy records, the head anchor's
            # record and what follows it, and anything that does not link take the full way (``line``).
            first = index
            needle, last, before, expected = self.needle, self.last_hash, self.before_last_hash, self.expected_seq
            head = self.head
            head_hash = head.hash if head is not None else ""
            head_seq = head.seq if head is not None else -1
            ready = bool(needle) and not self.sealed and not (self.head_seen and self.after_head is None) \
                and lineno + index - start != 1
            while ready and index < stop:
                line = lines[index]
                if line.find(needle) < 0 or line.find(b'"alg":"hmac-sha256"', 0, 256) < 0:
                    break
                e = line.find(b'"event":"')
                if e < 0 or line.startswith(_PARSED_BYTES, e + 9) or expected == head_seq:
                    break
                digest = sha256(line).hexdigest()
                if digest == head_hash:
                    break
                before, last = last, digest
                needle = b'"prev":"' + digest.encode("ascii") + b'"'
                if expected is not None:
                    expected += 1
                index += 1
            quick = index - first
            if quick:
                self.needle, self.last_hash, self.before_last_hash, self.expected_seq = needle, last, before, expected
                self.count += quick
                self.ordinal += quick
                self.last_at = (lineno + index - 1 - start, self.ordinal - 1)
                self.last_line = lines[index - 1]
            if index < stop:
                self.line(lines, index, lineno + index - start)
                index += 1

    def line(self, lines: Sequence[bytes], index: int, lineno: int) -> bool:
        """Check ``lines[index]`` (line ``lineno`` of the current file) the full way; the lines after it (up to
        ``LOOKAHEAD``) are only looked at to name a problem. True when no problem was found at it."""
        line = lines[index]
        ordinal = self.ordinal
        self.ordinal += 1
        fields = raw_fields(line)
        try:
            if self.sealed:
                raise _Problem(self.name, lineno, f"{Tamper.INSERTED}: a record after the day's seal", ordinal)
            if fields is None or (self.macs and self.cryptos is not None
                                  and not self.cryptos(fields.alg).line_mac_ok(line)):
                self._unsound(lines, index, lineno, ordinal)
            assert fields is not None
            digest = line_hash(fields.alg, line)
            head = self.head
            # Most lines are ordinary records that follow the one before: nothing more to check about them.
            if fields.seq != self.expected_seq or fields.prev != self.last_hash or lineno == 1 \
                    or fields.event is None or fields.event.startswith(_PARSED) \
                    or (head is not None and (fields.seq == head.seq or (self.head_seen and self.after_head is None))):
                self._record(fields, line, lines, index, lineno, ordinal, digest)
        except _Problem as problem:
            self._note(problem.finding)
            if problem.unsound or fields is None:
                self._step(None, "", ordinal, lineno)
            else:
                self._step(fields, line_hash(fields.alg, line), ordinal, lineno)
            return False
        self._step(fields, digest, ordinal, lineno)
        return True

    def _step(self, fields: _Fields | None, digest: str, ordinal: int, lineno: int) -> None:
        """Move past a line: the next record must follow it (or, after a broken line, the record it stood for)."""
        self.before_last_hash = self.last_hash
        self.last_at = (lineno, ordinal)
        if fields is None:
            self.last_hash = None
            self.needle = b""
            if self.expected_seq is not None:
                self.expected_seq += 1
            return
        self.last_hash = digest
        self.needle = b'"prev":"' + digest.encode("ascii") + b'"'
        self.expected_seq = fields.seq + 1
        if fields.event == SEAL_EVENT:
            self.sealed = True
        if self.first_seq is None:
            self.first_seq = fields.seq
        self.count += 1
        if self.first_time is None:
            self.first_time = _time(fields.time)
        self.last_line = None
        if fields.time is not None:
            self.last_time_raw = fields.time

    @property
    def last_pos(self) -> tuple[str, int, int] | None:
        """(file, line, ordinal) of the line before the one being checked."""
        if self.last_at is None:
            return None
        lineno, ordinal = self.last_at
        return (self.name if ordinal >= self.file_start else self.last_name, lineno, ordinal)

    def _unsound(self, lines: Sequence[bytes], index: int, lineno: int, ordinal: int) -> None:
        """The line is not a record as written by the gateway: say how (never returns)."""
        parsed = parse_line(lines[index], self.cryptos) if self.cryptos is not None else None
        if parsed is None or parsed.mac_ok:
            raise _Problem(self.name, lineno, f"{Tamper.MODIFIED}: not a well-formed record", ordinal, unsound=True)
        raise _Problem(self.name, lineno, self._bad_mac(lines, index), ordinal, unsound=True)

    def _record(self, f: _Fields, line: bytes, lines: Sequence[bytes], index: int, lineno: int, ordinal: int,
                digest: str) -> None:
        rec: dict[str, object] | None = None
        event = f.event
        if event is not None and event.startswith(_PARSED):
            rec = _json(line)
            if rec is None:
                raise _Problem(self.name, lineno, f"{Tamper.MODIFIED}: not a well-formed record", ordinal)
        if lineno == 1:
            self._link(rec if event == LINK_EVENT else None, ordinal)
        elif event == LINK_EVENT:
            raise _Problem(self.name, lineno, f"{Tamper.INSERTED}: a link record in the middle of a file", ordinal)
        if self.expected_seq is not None and f.seq != self.expected_seq:
            if self.public and f.seq == self.expected_seq - 1 and f.prev == self.before_last_hash \
                    and self.last_pos is not None:
                # The line before claims this record's place and this one links past it: it was slipped in.
                name, at, where = self.last_pos
                raise _Problem(name, at, f"{Tamper.INSERTED}: a record that is not in the signed chain", where)
            raise _Problem(self.name, lineno, self._bad_seq(lines, index, f.seq), ordinal)
        if self.last_hash is not None and f.prev != self.last_hash:
            if self.public and self.last_pos is not None:
                # Without MACs the change shows here: the record before no longer hashes to what this one names.
                name, at, where = self.last_pos
                raise _Problem(name, at, f"{Tamper.MODIFIED}: the record does not match the hash the next record "
                                         "holds for it", where)
            raise _Problem(self.name, lineno, f"{Tamper.INSERTED}: the record does not link to the record before it",
                           ordinal)
        starts_chain = self.whole_log and self.last_pos is None and self.first_link is not None \
            and self.first_link[1] is None
        if starts_chain and (f.prev != GENESIS or f.seq != 0):
            raise _Problem(self.name, lineno, f"{Tamper.MISSING}: the first record does not start the chain", ordinal)
        if rec is not None:
            self._chain_record(rec, event, lineno, ordinal)
            if self.seen is not None:
                self.seen(rec)
        head = self.head
        if head is not None and f.seq == head.seq:
            if head.file != self.name or not hmac.compare_digest(head.hash, digest):
                raise _Problem(self.name, lineno, f"{Tamper.MODIFIED}: not the record the head anchor names "
                                                  f"(seq {head.seq} in {head.file})", ordinal)
            self.head_seen = True
            self.head_ordinal = ordinal
        elif head is not None and self.head_seen and self.after_head is None:
            self.after_head = Finding(self.name, lineno, "", ordinal)

    def _chain_record(self, rec: dict[str, object], event: str | None, lineno: int, ordinal: int) -> None:
        if event == SEAL_EVENT:
            if rec.get("file") != self.name:
                raise _Problem(self.name, lineno, f"{Tamper.MODIFIED}: the seal names another file", ordinal)
            signed = signature_ok(rec, self.verify_key)
            if signed is False:
                raise _Problem(self.name, lineno, f"{Tamper.MODIFIED}: the seal's signature does not verify", ordinal)
            if signed and self.public:
                self.segment_start = max(self.segment_start, ordinal + 1)
        elif event == DAMAGED_EVENT:
            # The writer found the log tampered with and carried on; what it found stays a finding (usually a
            # gap or an edit before this record is named first). Without this, a cut made together with
            # deleting the head anchor would verify once the gateway had started again.
            raise _Problem(self.name, lineno, f"{Tamper.MISSING}: records may be missing or altered: the gateway "
                                              f"found {rec.get('found')!r} in {rec.get('file')!r}", ordinal)
        elif event == PRUNE_EVENT:
            files = rec.get("files")
            if isinstance(files, str):
                self.pruned.update(f for f in files.split(",") if f)
        elif event is not None and event.startswith("policy.") and self.kept is not None:
            self._kept_policy(rec, lineno, ordinal)

    def _kept_policy(self, rec: dict[str, object], lineno: int, ordinal: int) -> None:
        """A policy record that names its kept text: the text must be there, with the hash the record holds."""
        name = rec.get("policy_text")
        if name is None:
            return  # written before policy texts were kept, or the text could not be kept (then it says why)
        m = KEPT_POLICY.fullmatch(name) if isinstance(name, str) else None
        if m is None or m.group(1) != rec.get("policy_sha256"):
            raise _Problem(self.name, lineno, f"{Tamper.MODIFIED}: the record names a policy text {name!r} that is "
                                              "not the one of its policy_sha256", ordinal)
        assert self.kept is not None
        assert isinstance(name, str)
        found = self.kept(name)
        if found is None:
            raise _Problem(self.name, lineno, f"{Tamper.MISSING}: the kept policy text {name} is missing", ordinal)
        if not hmac.compare_digest(found, m.group(1)):
            raise _Problem(self.name, lineno, f"{Tamper.MODIFIED}: the kept policy text {name} was changed "
                                              f"(its SHA-256 is {found})", ordinal)

    def _link(self, rec: dict[str, object] | None, ordinal: int) -> None:
        """A file's first record links it to the file before it."""
        name = self.name
        if rec is None:
            raise _Problem(name, 1, f"{Tamper.MISSING}: the file does not start with its link record", ordinal)
        if rec.get("file") != name:
            said = rec.get("file")
            raise _Problem(name, 1, f"{Tamper.MODIFIED}: the file was renamed (it says {said!r})", ordinal)
        link_prev = rec.get("prev_file")
        if link_prev is not None and not isinstance(link_prev, str):
            raise _Problem(name, 1, f"{Tamper.MODIFIED}: bad prev_file", ordinal)
        prev_name = self.prev_name
        if prev_name is None:
            self.first_link = (name, link_prev)
        elif link_prev != prev_name:
            if link_prev is None:
                raise _Problem(name, 1, f"{Tamper.INSERTED}: a second chain starts here", ordinal)
            if link_prev > prev_name:
                raise _Problem(name, 1, f"{Tamper.MISSING}: the file before this one, {link_prev}, is missing",
                               ordinal)
            raise _Problem(name, 1, f"{Tamper.INSERTED}: the file {prev_name} does not belong here", ordinal)

    def finish(self) -> VerifyReport:
        end = self.ordinal
        if self.head_problem is not None:
            self._note(Finding(HEAD_NAME, 1, self.head_problem, -1))
        if self.prev_name is not None and self.prev_sealed:
            # The writer opens the next day's file in the same locked step as it seals a day.
            self._note(Finding(self.prev_name, self.prev_lines + 1,
                               f"{Tamper.MISSING}: the file after this sealed day is missing", end))
        first = self.first_link
        if self.whole_log and first is not None and first[1] is not None and first[1] not in self.pruned:
            self._note(Finding(first[0], 1, f"{Tamper.MISSING}: the file before this one, {first[1]}, is missing "
                                            "(never pruned)", 0))
        head = self.head
        last = -1 if self.expected_seq is None else self.expected_seq - 1
        if head is not None and not self.head_seen:
            if head.seq > last:
                name, line = (self.prev_name, self.prev_lines + 1) if self.prev_name is not None else (head.file, 1)
                self._note(Finding(name, line, f"{Tamper.TRUNCATED}: the log ends at seq {last}, but the head anchor "
                                               f"names seq {head.seq} in {head.file}: {head.seq - last} newest "
                                               "record(s) are missing", end))
            else:
                self._note(Finding(HEAD_NAME, 1, f"{Tamper.MODIFIED}: the head anchor names seq {head.seq}, which "
                                                 "is not in the log", -1))
        if not self.head_given and self.count:
            self._note(Finding(HEAD_NAME, 1, f"{Tamper.MISSING}: the head anchor (the newest record's seq and hash) "
                                             "is missing", -1))
        if self.public:
            self._public_coverage(end)
        tail = None
        if self.expected_seq is not None and self.last_hash is not None:
            tail = Tail(self.expected_seq, self.last_hash)
        return VerifyReport(
            files=self.files,
            count=self.count,
            first_time=self.first_time,
            last_time=_time(self.last_time_raw if self.last_line is None else _last_time(self.last_line)),
            first_seq=self.first_seq,
            last_seq=None if self.expected_seq is None else self.expected_seq - 1,
            tail=tail,
        )

    def _public_coverage(self, end: int) -> None:
        """With the public key, the signed head anchor vouches for the lines up to the record it names; what
        follows it (or everything since the last signature, without a good anchor) is not vouched for."""
        if self.head is not None and self.head_seen:
            self.segment_start = max(self.segment_start, self.head_ordinal + 1)
            after = self.after_head
            if after is not None:
                self._note(Finding(after.file, after.line, f"{Tamper.INSERTED}: {end - after.ordinal} line(s) after "
                                                           "the newest record the signed head anchor names: no "
                                                           "signature covers them", after.ordinal))
        if self.segment_start < end:
            why = "no signature vouches for it" + ("" if self.head is not None else f" ({self.head_problem})")
            self.unverified.append(Unverified(self.segment_start, end, why))
            self.segment_start = end

    # -- naming a problem -------------------------------------------------------------------------

    def _later(self, lines: Sequence[bytes], index: int, limit: int = LOOKAHEAD) -> Iterable[_Fields]:
        for line in lines[index + 1: index + 1 + limit]:
            if self.cryptos is not None:
                parsed: ParsedLine | None = parse_line(line, self.cryptos)
                if parsed is not None and parsed.mac_ok:
                    yield _Fields(parsed.seq, parsed.prev, parsed.algorithm, None, None)
            else:
                fields = raw_fields(line)
                if fields is not None:
                    yield fields

    def _bad_mac(self, lines: Sequence[bytes], index: int) -> str:
        """A record with a wrong MAC: forged and slipped in (the next record links past it), or edited."""
        nxt = next(iter(self._later(lines, index, limit=1)), None)
        if (
            nxt is not None
            and self.last_hash is not None
            and nxt.prev == self.last_hash
            and nxt.seq == self.expected_seq
        ):
            return f"{Tamper.INSERTED}: a record without a valid MAC (forged without the key)"
        return f"{Tamper.MODIFIED}: the record does not match its MAC"

    def _bad_seq(self, lines: Sequence[bytes], index: int, found: int) -> str:
        expected = self.expected_seq
        assert expected is not None
        if found < expected:
            return f"{Tamper.REORDERED}: record #{found} appears after record #{expected - 1}"
        if any(p.seq == expected for p in self._later(lines, index)):
            return f"{Tamper.REORDERED}: record #{found} appears before record #{expected}"
        gap = found - expected
        return f"{Tamper.MISSING}: {gap} record{'s' if gap != 1 else ''} before this one (#{expected}–#{found - 1})"


def _last_time(line: bytes) -> bytes | None:
    fields = raw_fields(line)
    return None if fields is None else fields.time


def _json(line: bytes) -> dict[str, object] | None:
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def verify_files(
    files: Iterable[tuple[str, bytes]],
    keys: AuditKey,
    algorithm: AuditAlgorithm | None = None,
    *,
    head: bytes | None = None,
    kept: Callable[[str], str | None] | None = None,
) -> VerifyReport:
    """Verify daily files given in order as (name, content). Raises ``AuditChainBroken`` at the first broken record.

    Every record names its own algorithm (``alg``) and is checked with it, so a log that spans a
    change of ``audit.algorithm`` verifies; both are keyed, so naming the other one gains a forger
    nothing. ``algorithm`` (the policy's current choice) is therefore only informative.

    ``head`` is the head anchor's content (``HEAD_NAME``), required once there are records: the
    record it names must be in the log as it names it, so cutting the newest records is found.
    """
    del algorithm
    walk = ChainWalk(keys, head, kept=kept)
    for name, data in files:
        walk.begin_file(name)
        lines, partial = split_lines(data)
        walk.lines(lines, 0, len(lines), 1)
        walk.end_file(len(lines), partial)
    return walk.finish()
