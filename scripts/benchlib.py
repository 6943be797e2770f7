"""What the benchmark scripts share: loopback ports. (Scripts never import from tests/.)

    from benchlib import free_port, wait_for_port   # scripts/ is on sys.path when a bench runs
"""

from __future__ import annotations

import socket
import time


def free_port() -> int:
    """A loopback TCP port that nobody listens on right now (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    """Return once something accepts connections on loopback ``port``; ``RuntimeError`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listening on port {port} after {timeout}s") from None
            time.sleep(0.05)
