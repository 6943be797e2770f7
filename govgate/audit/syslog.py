"""The optional syslog mirror of the audit log (RFC 5424 over UDP, or TCP with octet counting, RFC 6587).

Best effort by design: lines are handed over only after they are safely in the local chain, sit
in a bounded queue of their own, and are sent by a thread of their own, so a slow or absent
SIEM never blocks or weakens the local log (Art. 20). Messages that cannot be sent are counted
(``dropped``), never retried forever. Each message carries the whole chained line (with ``seq``,
``prev`` and ``mac``), so a SIEM holding the log can check it too.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

FACILITY_LOG_AUDIT = 13  # RFC 5424 §6.2.1: "log audit"
SEVERITY_NOTICE = 5
SEVERITY_INFO = 6
APP_NAME = "govgate"
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class SyslogTarget:
    transport: str  # "udp" | "tcp"
    host: str
    port: int


def parse_syslog_url(url: str) -> SyslogTarget:
    """``udp://host:514`` or ``tcp://host:514`` (port defaults to 514). Raises ``ValueError``."""
    parts = urlsplit(url)
    if parts.scheme not in ("udp", "tcp") or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"expected udp://host:port or tcp://host:port, got {url!r}")
    return SyslogTarget(parts.scheme, parts.hostname, parts.port or 514)


def _printable(text: str, limit: int) -> str:
    out = "".join(c if 33 <= ord(c) <= 126 else "_" for c in text)[:limit]
    return out or "-"


def format_message(line: bytes, hostname: str, procid: int) -> bytes:
    """One RFC 5424 message for a chained audit line: PRI VERSION TIMESTAMP HOST APP PROCID MSGID SD MSG."""
    try:
        record = json.loads(line)
    except ValueError:
        record = {}
    if not isinstance(record, dict):
        record = {}
    event = str(record.get("event") or "audit")
    timestamp = record.get("time")
    severity = SEVERITY_NOTICE if record.get("decision") in ("refuse", "deny") else SEVERITY_INFO
    pri = FACILITY_LOG_AUDIT * 8 + severity
    ts = timestamp if isinstance(timestamp, str) and timestamp else "-"
    header = f"<{pri}>1 {_printable(ts, 64)} {_printable(hostname, 255)} {APP_NAME} {procid} {_printable(event, 32)} -"
    return header.encode("ascii") + b" " + _BOM + line


class SyslogMirror:
    """Sends chained audit lines to a syslog collector from its own thread."""

    def __init__(self, url: str, *, max_queue: int = 10_000) -> None:
        self.target = parse_syslog_url(url)
        self.dropped = 0
        self.sent = 0
        self._max_queue = max_queue
        self._queue: deque[bytes] = deque()
        self._wake = threading.Event()
        self._stop = False
        self._hostname = socket.gethostname()
        self._procid = os.getpid()
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, name="govgate-audit-syslog", daemon=True)
        self._thread.start()

    def send(self, lines: list[bytes]) -> None:
        """Queue lines for sending; never blocks. Lines beyond the bound are dropped and counted."""
        room = self._max_queue - len(self._queue)
        if room < len(lines):
            self.dropped += len(lines) - max(room, 0)
            lines = lines[: max(room, 0)]
        self._queue.extend(lines)
        self._wake.set()

    def close(self, timeout: float = 2.0) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            self._wake.wait(1.0)
            self._wake.clear()
            while self._queue:
                line = self._queue.popleft()
                try:
                    self._send_one(format_message(line, self._hostname, self._procid))
                    self.sent += 1
                except OSError as exc:
                    self.dropped += 1
                    log.warning("audit.syslog.failed target=%s:%d error=%s", self.target.host, self.target.port, exc)
                    self._disconnect()
                    if self.target.transport == "tcp":
                        # Don't hammer an absent collector: drop what is queued, try again with new lines.
                        self.dropped += len(self._queue)
                        self._queue.clear()
            if self._stop:
                self._disconnect()
                return

    def _send_one(self, message: bytes) -> None:
        if self._sock is None:
            self._sock = self._connect()
        if self.target.transport == "udp":
            self._sock.send(message)
        else:
            # RFC 6587 §3.4.1 octet counting.
            self._sock.sendall(str(len(message)).encode("ascii") + b" " + message)

    def _connect(self) -> socket.socket:
        kind = socket.SOCK_DGRAM if self.target.transport == "udp" else socket.SOCK_STREAM
        infos = socket.getaddrinfo(self.target.host, self.target.port, type=kind)
        if not infos:
            raise OSError(f"cannot resolve {self.target.host}")
        family, socktype, proto, _, addr = infos[0]
        sock = socket.socket(family, socktype, proto)
        sock.settimeout(2.0)
        try:
            sock.connect(addr)
        except OSError:
            sock.close()
            raise
        return sock

    def _disconnect(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
