"""The thin layer between the disk and the core: reading (and creating) the files whose bytes the core works on.

The core (``govgate.core``) is functions of bytes and values; this module does the reading around it
and turns what the disk says (missing, unreadable, a folder) into the same kind of problem or error
the core reports:

- ``load_policy(path)``: read policy.yaml (or take the bytes a caller already read), validate them
  with ``govgate.core.policy.load``, then read and check the files the policy names (TLS certificate
  and device CA, GeoIP database). Every problem, the core's and the disk's, in one ``PolicyError``.
- ``load_key_file(path)``: the gateway key (``govgate.core.keys``); on first use the file is created
  with mode 0600 (its folder, if new, 0700), never overwritten, and fsynced before the key is used.
- ``open_country_lookup(path)``: the GeoIP database opened (memory-mapped) for ``govgate.core.geoip``.
- ``file_signature(path)`` and ``look_at(path)``: what the gateway's reload polling sees of a file
  (one ``stat``; the bytes with the look ``govgate.core.settle`` judges).

The accounts file's part of this layer is ``govgate.accounts_file``: it is the one file GovGate writes
while it may be read (`govgate account` beside a running gateway), and its lock, atomic replace and
fsync protocol is a unit of its own that its tests exercise as one.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import stat
import tempfile
import time
from pathlib import Path

import maxminddb

from govgate.audit.log_dir import fsync_dir
from govgate.core.geoip import CountryLookup, GeoIPDatabaseError, invalid_database
from govgate.core.keys import GatewayKeys, new_key_text, parse_key_text
from govgate.core.policy.load import read_policy_bytes
from govgate.core.policy.model import Policy
from govgate.core.policy.named_files import FileKind, NamedFile, content_problem
from govgate.core.settle import FileLook
from govgate.errors import KeyFileError, PolicyError, PolicyProblem
from govgate.regular_file import read_regular, read_regular_text

# -- policy.yaml ----------------------------------------------------------------------------------------


def load_policy(path: Path, *, data: bytes | None = None, check_files: bool = True) -> Policy:
    """The validated policy in ``path``; raises ``PolicyError`` listing every problem.

    ``data``: the bytes already read from ``path`` (the gateway's reload reads a settled file once and
    loads exactly those bytes). ``check_files=False`` skips reading the files the policy names, for
    commands that do not use them (`govgate account`, `govgate audit`).
    """
    if data is None:
        try:
            data = read_regular(path)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise PolicyError([PolicyProblem(str(path), 0, "", f"cannot read the policy file: {reason}")]) from None
    reading = read_policy_bytes(data, path)
    more = _named_files_problems(reading.named_files, str(path)) if check_files else []
    return reading.policy_or_error(more)


def _named_files_problems(named_files: tuple[NamedFile, ...], policy_file: str) -> list[PolicyProblem]:
    """Read each file the policy names and check what it holds; the problems point at the policy's lines."""
    problems: list[PolicyProblem] = []
    for named in named_files:
        problem = _named_file_problem(named)
        if problem is not None:
            problems.append(PolicyProblem(policy_file, named.line, named.key_path, problem))
    return problems


def _named_file_problem(named: NamedFile) -> str | None:
    try:
        data = read_regular(named.path)
    except IsADirectoryError:
        return f"expected {named.expected}; found a folder at {named.path}"
    except OSError as exc:
        return f"expected {named.expected} at {named.path}; cannot read it: {exc.strerror or type(exc).__name__}"
    except ValueError as exc:  # a path no file can have, e.g. with a NUL character
        return f"expected {named.expected} at {str(named.path)!r}; cannot read it: {exc}"
    if named.kind is FileKind.GEOIP_DATABASE:
        try:
            reader = maxminddb.open_database(str(named.path))
        except (maxminddb.InvalidDatabaseError, OSError, ValueError, RuntimeError) as exc:
            return f"expected {named.expected}; {named.path} is not a valid database ({exc})"
        reader.close()
        return None
    return content_problem(named, data)


# -- the gateway key --------------------------------------------------------------------------------------

KEY_FILE_MODE = 0o600


def load_key_file(path: Path, *, create: bool = True) -> GatewayKeys:
    """Read the key file, creating it (mode 0600, never overwriting) if absent and ``create`` is set."""
    try:
        text = read_regular_text(path, "ascii")
    except FileNotFoundError:
        if not create:
            raise KeyFileError(f"{path}: key file does not exist") from None
        return _create_key_file(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: cannot read key file: {exc}") from None
    keys = parse_key_text(text, str(path))
    remove_stale_key_temporaries(path.parent)
    return keys


_KEY_TEMPORARY = ".govgate-key.*.new"  # ``_create_key_file``'s temporary files (``mkstemp`` prefix and suffix)
STALE_KEY_TEMPORARY = 60.0  # seconds: a temporary older than this belongs to no creation still under way


def remove_stale_key_temporaries(folder: Path, *, now: float | None = None) -> list[Path]:
    """Remove what a crash between ``mkstemp`` and ``unlink`` in ``_create_key_file`` left: key material in a
    stray file (mode 0600; after ``link``, a second name of the key in use). A creation takes milliseconds, so a
    temporary older than ``STALE_KEY_TEMPORARY`` is no other process's work in progress. Returns what was removed;
    a file that cannot be removed stays, and the key is used all the same."""
    removed: list[Path] = []
    limit = (time.time() if now is None else now) - STALE_KEY_TEMPORARY
    with contextlib.suppress(OSError):
        for stray in folder.glob(_KEY_TEMPORARY):
            with contextlib.suppress(OSError):
                st = stray.lstat()
                if stat.S_ISREG(st.st_mode) and st.st_mtime < limit:
                    stray.unlink()
                    removed.append(stray)
    return removed


# A filesystem that has no hard links (vfat, exfat, many FUSE and CIFS mounts) refuses ``link`` with one of these.
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK})


def _create_key_file(path: Path) -> GatewayKeys:
    """Write a new key beside ``path`` and publish it there whole: ``link`` never replaces a file, so of gateways
    starting at once (``--workers N``) one creates the key and the others read that one, never a file half written
    (an empty or short key file is refused as malformed). ``mkstemp`` makes the file with mode 0600.

    On a filesystem without hard links the key is created in place (``O_EXCL``, never over an existing file), as
    before: there, workers starting at once on a fresh key file can still catch it half written, and the one that
    does stops with the key file's error (start one gateway first to create the key)."""
    text = new_key_text()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, temporary = tempfile.mkstemp(prefix=".govgate-key.", suffix=".new", dir=path.parent)
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot create key file: {exc}") from None
    try:
        _write_and_sync(fd, text)
        os.link(temporary, path)
    except FileExistsError:
        # Another process published its key between our read and our link: use theirs.
        return load_key_file(path, create=False)
    except OSError as exc:
        if exc.errno in _NO_HARD_LINKS:
            return _create_key_file_in_place(path, text)
        raise KeyFileError(f"{path}: cannot create key file: {exc}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
    with contextlib.suppress(OSError):  # the new name survives a crash, where the system allows it
        fsync_dir(path.parent)
    return parse_key_text(text, str(path))


def _create_key_file_in_place(path: Path, text: str) -> GatewayKeys:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    except FileExistsError:
        return load_key_file(path, create=False)
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot create key file: {exc}") from None
    _write_and_sync(fd, text)
    return parse_key_text(text, str(path))


def _write_and_sync(fd: int, text: str) -> None:
    """Write ``text`` to ``fd``, fsync and close it (closed whatever happens)."""
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


# -- the GeoIP database -----------------------------------------------------------------------------------


def open_country_lookup(path: Path) -> CountryLookup:
    """The country lookup of the MaxMind database at ``path``, opened once, from a private copy of its bytes.

    The lookup never reads the file again: a database memory-mapped from the file itself dies with it (SIGBUS on
    the next lookup, no log line, no audit record) when the file is rewritten in place, as ``cp``, ``curl -o`` and
    ``wget -O`` do (found in review). The copy is anonymous memory (``memfd``), mapped by the C reader; without
    ``memfd`` the pure-Python reader holds the bytes in memory. Raises ``GeoIPDatabaseError`` naming the file when it
    is missing, unreadable or not a valid database.
    """
    try:
        data = read_regular(path)
        reader = _reader_of_private_copy(data)
    except FileNotFoundError as exc:
        raise GeoIPDatabaseError(f"{path}: GeoIP database not found") from exc
    except (maxminddb.InvalidDatabaseError, OSError, ValueError) as exc:
        raise invalid_database(str(path), exc) from exc
    try:
        return CountryLookup(reader, str(path))
    except GeoIPDatabaseError:
        reader.close()
        raise


def _reader_of_private_copy(data: bytes) -> maxminddb.Reader:
    """A reader of ``data`` that no file on disk backs."""
    memfd = getattr(os, "memfd_create", None)
    if memfd is None:
        return maxminddb.open_database(io.BytesIO(data), maxminddb.MODE_FD)
    fd = memfd("govgate-geoip", os.MFD_CLOEXEC)
    try:
        with os.fdopen(os.dup(fd), "wb") as copy:
            copy.write(data)
        # The C reader opens a path and maps what it opens: this process's own anonymous copy.
        return maxminddb.open_database(f"/proc/self/fd/{fd}", maxminddb.MODE_AUTO)
    finally:
        os.close(fd)


# -- what the reload polling sees ---------------------------------------------------------------------------

type FileSignature = tuple[int, int, int] | None  # (mtime_ns, size, inode); None: absent


def file_signature(path: Path) -> FileSignature:
    """A cheap fingerprint of the file's current version (one ``stat``); None if it is absent. ``os.replace``
    gives a new inode, so even a same-second, same-size rewrite (``govgate account``) is seen."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def look_at(path: Path) -> tuple[FileLook, bytes] | None:
    """Blocking: one look at ``path`` and its bytes; None when it is absent, unreadable, or changed while
    being read (a writer is still at work)."""
    try:
        before = path.stat()
        data = read_regular(path)
        after = path.stat()
    except OSError:
        return None
    if (before.st_ino, before.st_size, before.st_mtime_ns) != (after.st_ino, after.st_size, after.st_mtime_ns) \
            or len(data) != after.st_size:
        return None
    return FileLook(mtime_ns=after.st_mtime_ns, ctime_ns=after.st_ctime_ns, size=after.st_size, inode=after.st_ino,
                    sha256=hashlib.sha256(data).hexdigest()), data


def signature_of(look: FileLook) -> FileSignature:
    """The signature of the version ``look`` saw."""
    return (look.mtime_ns, look.size, look.inode)
