"""Parse and format the policy's durations (``30s``, ``15m``, ``8h``, ``7d``, or combined ``1h30m``).

This is the one place durations are parsed.
"""

from __future__ import annotations

import re
from datetime import timedelta

MAX_DURATION = timedelta(days=3650)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(text: str) -> timedelta:
    """``"15m"`` → 15 minutes. Raises ``ValueError`` with a readable message on anything else."""
    if not isinstance(text, str):
        raise ValueError(f"expected a duration like 30s, 15m, 8h or 7d, got {text!r}")
    s = text.strip()
    m = _DURATION.fullmatch(s)
    if not s or m is None or not any(m.groups()):
        raise ValueError(f"expected a duration like 30s, 15m, 8h or 7d, got {text!r}")
    if any(g is not None and len(g) > 9 for g in m.groups()):
        raise ValueError(f"a duration must be at most {MAX_DURATION.days} days, got {text[:40]!r}")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    value = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if value <= timedelta(0):
        raise ValueError(f"a duration must be positive, got {text!r}")
    if value > MAX_DURATION:
        # Longer is a typo, and `now + value` would overflow datetime arithmetic downstream.
        raise ValueError(f"a duration must be at most {MAX_DURATION.days} days, got {text!r}")
    return value


def format_duration(value: timedelta) -> str:
    """The inverse of ``parse_duration``: 90 minutes → ``"1h30m"``."""
    total = int(value.total_seconds())
    if total <= 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s"):
        n, total = divmod(total, _UNIT_SECONDS[unit])
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)
