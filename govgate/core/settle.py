"""When a watched file is complete: the rule the gateway's reload follows before it applies a new text.

An editor saving, a copy in progress or a configuration tool writing in chunks leaves ``policy.yaml``
half written for a moment, and a half-written policy can still be valid (a cut after a complete rule).
Validation alone cannot tell, so a changed file is applied only when it is *settled*:

- it was moved into place whole — an atomic rename (a new inode whose status change time is later than
  its last write: its bytes were complete before the rename), which is how the docs tell operators to
  save; or
- it has stopped changing: two consecutive looks agree on size, modification time, inode and SHA-256,
  and it has been that way for at least ``quiet`` (by its modification time, or by how long the
  watcher has seen it unchanged, whichever says so first — a file stamped in the future still settles).

Pure: the looks and the clock are passed in (``govgate.live_runtime`` does the ``stat`` and the reading).
"""

from __future__ import annotations

from dataclasses import dataclass

QUIET_NS = 1_500_000_000  # longer than the pause of a slow writer between two chunks (tested with 1 s)


@dataclass(frozen=True, slots=True)
class FileLook:
    """One look at a file: what ``stat`` said and the SHA-256 of the bytes read right after."""

    mtime_ns: int
    ctime_ns: int
    size: int
    inode: int
    sha256: str

    def same_file_as(self, other: FileLook | None) -> bool:
        return (other is not None and self.inode == other.inode and self.size == other.size
                and self.mtime_ns == other.mtime_ns and self.sha256 == other.sha256)


def moved_in_whole(look: FileLook, applied_inode: int | None) -> bool:
    """An atomic rename put this file in place: another inode than the one last applied, renamed after its
    last write (the rename changes the status time, not the modification time)."""
    return applied_inode is not None and look.inode != applied_inode and look.ctime_ns > look.mtime_ns


def settled(look: FileLook, previous: FileLook | None, *, applied_inode: int | None, now_ns: int,
            seen_since_ns: int, quiet_ns: int = QUIET_NS) -> bool:
    """Whether ``look`` (this poll) may be applied; ``previous`` is the last poll's look of the same path,
    ``seen_since_ns`` when the watcher first saw this same look (same clock as ``now_ns``)."""
    if moved_in_whole(look, applied_inode):
        return True
    if not look.same_file_as(previous):
        return False
    return now_ns - look.mtime_ns >= quiet_ns or now_ns - seen_since_ns >= quiet_ns
