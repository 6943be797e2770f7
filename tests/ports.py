"""Loopback ports for tests: the one place a test asks the system for a free port.

Prefer port 0 where the program under test reports the port it got (the gateway and the sample portal
print theirs). A free port is for what must be told its port up front (redis-server, a metrics
listener, `govgate demo`, a bare mitmproxy) or for an address nobody listens on.
"""

from __future__ import annotations

import socket
import subprocess
from typing import Any

from tests.waiting import wait_for


def free_port() -> int:
    """A loopback TCP port that nobody listens on right now (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def accepts_connections(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(port: int, timeout: float = 30.0, *, process: subprocess.Popen[Any] | None = None) -> None:
    """Wait until something accepts connections on loopback ``port``; if ``process`` exits first, fail at once."""
    def listening() -> bool:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process exited with {process.returncode} before listening on port {port}")
        return accepts_connections(port)

    wait_for(listening, timeout, f"a listener on port {port}")
