"""The thin layer between the disk and the core: every file GovGate reads or writes for the core.

The core (``govgate.core``) is functions of bytes and values; this module does the reading around it
and turns what the disk says (missing, unreadable, a folder) into the same kind of problem or error
the core reports:

- ``load_policy(path)``: read policy.yaml (or take the bytes a caller already read), validate them
  with ``govgate.core.policy.load``, then read and check the files the policy names (TLS certificate
  and device CA, GeoIP database). Every problem, the core's and the disk's, in one ``PolicyError``.

The accounts file's part of this layer is ``govgate.accounts_file``: it is the one file GovGate writes
while it may be read (`govgate account` beside a running gateway), and its lock, atomic replace and
fsync protocol is a unit of its own that its tests exercise as one.
"""

from __future__ import annotations

from pathlib import Path

import maxminddb

from govgate.core.policy.load import read_policy_bytes
from govgate.core.policy.model import Policy
from govgate.core.policy.named_files import FileKind, NamedFile, content_problem
from govgate.errors import PolicyError, PolicyProblem

# -- policy.yaml ----------------------------------------------------------------------------------------


def load_policy(path: Path, *, data: bytes | None = None, check_files: bool = True) -> Policy:
    """The validated policy in ``path``; raises ``PolicyError`` listing every problem.

    ``data``: the bytes already read from ``path`` (the gateway's reload reads a settled file once and
    loads exactly those bytes). ``check_files=False`` skips reading the files the policy names, for
    commands that do not use them (`govgate account`, `govgate audit`).
    """
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise PolicyError([PolicyProblem(str(path), 0, "", f"cannot read the policy file: {reason}")]) from None
    reading = read_policy_bytes(data, path)
    more = named_file_problems(reading.named_files, str(path)) if check_files else []
    return reading.policy_or_error(more)


def named_file_problems(named_files: tuple[NamedFile, ...], policy_file: str) -> list[PolicyProblem]:
    """Read each file the policy names and check what it holds; the problems point at the policy's lines."""
    problems: list[PolicyProblem] = []
    for named in named_files:
        problem = _named_file_problem(named)
        if problem is not None:
            problems.append(PolicyProblem(policy_file, named.line, named.key_path, problem))
    return problems


def _named_file_problem(named: NamedFile) -> str | None:
    try:
        data = named.path.read_bytes()
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
