"""The gateway's log lines: each starts with the time, with its UTC offset, in ``gateway.timezone``.

The audit log writes its times that way (``2026-11-25T10:00:00.123+08:00``); the operator's log uses the same
clock face, so a log line and the audit record of the same request read alike, and a line stays
unambiguous when it is shipped to a collector in another zone. Until a policy is loaded (and for commands
that load none) the machine's local zone is used, still with its offset.

``LogLineFormatter`` formats; ``use_timezone(tz)`` is called by the runtime whenever a policy is loaded.
"""

from __future__ import annotations

import logging
from datetime import datetime, tzinfo

_zone: tzinfo | None = None  # None: the machine's local zone


def use_timezone(zone: tzinfo | None) -> None:
    """Log times from now on in ``zone`` (the policy's ``gateway.timezone``); None: the local zone."""
    global _zone
    _zone = zone


def log_time(created: float) -> str:
    """``created`` (a ``LogRecord``'s POSIX time) as ISO 8601 with milliseconds and offset."""
    zone = _zone
    moment = datetime.fromtimestamp(created, zone) if zone is not None else datetime.fromtimestamp(created).astimezone()
    return moment.isoformat(timespec="milliseconds")


class LogLineFormatter(logging.Formatter):
    """``2026-11-25T10:00:00.123+08:00 INFO govgate.live_runtime: policy.reload …``"""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return log_time(record.created)


def configure_logging(level: int = logging.INFO) -> None:
    """The root logger writes ``LogLineFormatter`` lines to stderr. Like ``logging.basicConfig``, it does nothing
    when the root logger has handlers already (a second call, or a host such as a test runner that set its own)."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(LogLineFormatter())
    root.addHandler(handler)
    root.setLevel(level)
