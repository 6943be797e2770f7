"""The accounts file on disk: loading, and locked, atomic updates — the accounts part of the files layer.

Art. 30 (第三十条): the credentials of staff accounts; only hashes and encrypted secrets are stored.

The rest of the layer between the disk and the core is ``govgate.files`` (policy, key file, GeoIP
database); the accounts file keeps a module of its own because it is the one file GovGate writes while
another process may be reading or writing it, and the lock, atomic replace and fsync steps below only
make sense together. Parsing and serialising are the core's (``govgate.core.accounts``).

- ``load_accounts(path)``: a missing file means no accounts; an invalid one raises ``PolicyError``.
- ``update_accounts(path, change)``: read-modify-write under an exclusive ``fcntl.flock`` on
  ``<file>.lock`` beside it, so two ``govgate account`` runs at once both take effect; the new text is
  written to a temporary file in the same folder (mode 0600), fsynced, and ``os.replace``d over the
  old one, then the folder is fsynced: a reader (the gateway) sees the old file or the new, never half.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from govgate.core import totp
from govgate.core.accounts import Accounts, dump_accounts, parse_accounts
from govgate.core.policy.model import Policy
from govgate.errors import AccountError, GovGateError, KeyFileError, PolicyError, PolicyProblem
from govgate.files import load_key_file
from govgate.regular_file import read_regular

logger = logging.getLogger(__name__)

FILE_MODE = 0o600


def load_accounts(path: Path) -> Accounts:
    """The accounts in ``path``. A missing file is no accounts; anything invalid is a ``PolicyError``."""
    try:
        data = read_regular(path)
    except FileNotFoundError:
        return Accounts()
    except OSError as exc:
        raise PolicyError([PolicyProblem(str(path), 0, "", f"cannot read the accounts file: {exc.strerror}")]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError([PolicyProblem(str(path), 0, "", "the accounts file is not UTF-8 text")]) from None
    return parse_accounts(text, str(path))


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the exclusive lock that serialises writers of ``path`` (readers need none)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT, FILE_MODE)
    except OSError as exc:
        raise AccountError(f"{path}: cannot open the lock file: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def write_accounts(path: Path, accounts: Accounts) -> None:
    """Replace the file atomically with ``accounts`` (callers hold ``locked(path)``)."""
    write_atomically(path, dump_accounts(accounts).encode("utf-8"), what="the accounts file", error=AccountError)


def write_atomically(path: Path, data: bytes, *, what: str, error: type[GovGateError] = GovGateError,
                     mode: int = FILE_MODE) -> None:
    """Replace ``path`` with ``data``: a temporary file in the same folder, fsynced, renamed over it, then the
    folder fsynced — a reader sees the old file or the new, never half (the gateway applies it at once)."""
    directory = path.parent
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise error(f"{path}: cannot write {what}: {exc.strerror}") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            # The gateway applies a file at once when it was renamed into place after its last write (status
            # time later than modification time: govgate.core.settle); otherwise only after 1.5 s of quiet. The
            # kernel stamps both from a coarse clock, so a write, fsync and rename within one tick leave them
            # equal: every change by this command would wait out the quiet time. Dating the write a second back
            # makes the rename that follows tell (a revoke, unlock or logout then takes effect within the 0.5 s poll).
            written = os.fstat(f.fileno())
            os.utime(f.fileno(), ns=(written.st_atime_ns, written.st_mtime_ns - 1_000_000_000))
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise error(f"{path}: cannot write {what}: {exc.strerror}") from None
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        logger.warning("accounts.fsync_dir_failed dir=%s error=%s", directory, exc.strerror)
        return
    try:
        os.fsync(dir_fd)
    except OSError as exc:
        logger.warning("accounts.fsync_dir_failed dir=%s error=%s", directory, exc.strerror)
    finally:
        os.close(dir_fd)


def accounts_to_change(path: Path) -> Accounts:
    """The accounts a command changes: ``load_accounts``, but a file made empty beforehand (``touch``, a
    provisioning tool) is no accounts yet. (The gateway refuses an empty file, a copy cut short, and keeps the
    last good one.)"""
    try:
        if path.stat().st_size == 0:
            return Accounts()
    except OSError:
        pass
    return load_accounts(path)


def update_accounts(path: Path, change: Callable[[Accounts], Accounts]) -> Accounts:
    """Read the file, apply ``change``, write the result atomically, all under the writers' lock.

    ``change`` may raise (``AccountError`` for "exists", "unknown", …): then nothing is written.
    An invalid file is refused (``PolicyError``) rather than overwritten.
    """
    with locked(path):
        current = accounts_to_change(path)
        updated = change(current)
        if updated != current:
            write_accounts(path, updated)
        return updated


def accounts_problems(policy: Policy) -> list[PolicyProblem]:
    """Every problem of the policy's accounts file, for ``govgate check``.

    Beyond the file's own validity: groups the policy does not declare (when it declares ``groups``),
    and TOTP secrets that do not decrypt under ``gateway.key_file`` (a key file replaced or restored
    from the wrong backup). The key file is only read, never created, here.
    """
    path = policy.accounts_file
    try:
        accounts = load_accounts(path)
    except PolicyError as exc:
        return list(exc.problems)
    problems: list[PolicyProblem] = []
    if policy.groups is not None:
        declared = set(policy.groups)
        for account in accounts:
            for index, group in enumerate(account.groups):
                if group not in declared:
                    problems.append(PolicyProblem(str(path), 0, f"accounts.{account.name}.groups[{index}]",
                                                  f"group {group!r} is not declared in the policy's groups"))
    if len(accounts) == 0:
        return problems
    try:
        keys = load_key_file(policy.gateway.key_file, create=False)
    except KeyFileError as exc:
        problems.append(PolicyProblem(str(path), 0, "", f"TOTP secrets cannot be checked: {exc}"))
        return problems
    for account in accounts:
        try:
            totp.decrypt_secret(keys, account.name, account.totp_secret)
        except GovGateError:
            problems.append(PolicyProblem(
                str(path), 0, f"accounts.{account.name}.totp_secret",
                "does not decrypt under gateway.key_file (another key, or edited); run `govgate account reset-totp`"))
    return problems
