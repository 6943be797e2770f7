"""The key files `govgate audit` reads, and the one `govgate audit export-key` writes (Art. 20).

``--key-file`` takes either the gateway key (``gateway.key_file``: checks MACs and signatures, and is
needed to write records) or an exported audit key (the public key: checks signatures only, safe to hand
to an auditor). ``export_key`` writes the latter: mode 0644, never over an existing file.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from govgate.core.audit_keys import AuditKey, export_document, parse_document
from govgate.core.keys import GatewayKeys
from govgate.errors import KeyFileError
from govgate.files import load_key_file


def load_audit_key(path: Path) -> AuditKey:
    """The gateway key or an exported audit key, whichever ``path`` holds; ``KeyFileError`` otherwise."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: key file does not exist") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read key file: {exc.strerror or exc}") from None
    if data.lstrip().startswith(b"{"):
        return parse_document(data, str(path))
    return load_key_file(path, create=False)


def export_key(keys: GatewayKeys, path: Path, *, timezone: str, now: datetime) -> None:
    """Write the exported audit key to ``path`` (mode 0644); ``KeyFileError`` if it exists or cannot be written."""
    data = export_document(keys, timezone=timezone, created=now)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        raise KeyFileError(f"{path}: already exists; not overwritten (remove it first, or choose another name)") \
            from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot create: {exc.strerror or exc}") from None
    try:
        os.fchmod(fd, 0o644)  # whatever the umask: it is meant to be read by others
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
