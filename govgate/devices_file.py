"""The device registry on disk (``policy.devices_file``): loading, and locked, atomic updates.

Art. 19 / Art. 30: the devices `govgate device` issues and the browsers staff enrol. Written by the CLI and by
the gateway's enrolment page, possibly at the same moment: every update is a read-modify-write under the same
exclusive lock as the accounts file uses (``<file>.lock`` beside it), written to a temporary file and renamed
over the old one, so the gateway's reload (which watches this file) sees the old registry or the new, never
half. Parsing and the changes themselves are the core's (``govgate.core.device_registry``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from govgate.accounts_file import locked, write_atomically
from govgate.core.device_registry import DeviceRegistry, dump_registry, parse_registry
from govgate.errors import DeviceError, PolicyError, PolicyProblem
from govgate.regular_file import read_regular


def load_registry(path: Path) -> DeviceRegistry:
    """The registry in ``path``; a missing file is an empty registry; anything invalid is a ``PolicyError``."""
    try:
        data = read_regular(path)
    except FileNotFoundError:
        return DeviceRegistry()
    except OSError as exc:
        raise PolicyError([PolicyProblem(str(path), 0, "", f"cannot read the devices file: {exc.strerror}")]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError([PolicyProblem(str(path), 0, "", "the devices file is not UTF-8 text")]) from None
    return parse_registry(text, str(path))


def update_registry(path: Path, change: Callable[[DeviceRegistry], DeviceRegistry]) -> DeviceRegistry:
    """Read, apply ``change`` (which may raise ``DeviceError``: then nothing is written), write atomically."""
    with locked(path):
        current = load_registry(path)
        updated = change(current)
        if updated != current:
            write_atomically(path, dump_registry(updated).encode("utf-8"), what="the devices file",
                             error=DeviceError)
        return updated
