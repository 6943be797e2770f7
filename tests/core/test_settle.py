"""``govgate.core.settle``: a changed file is applied only when complete (moved in whole, or quiet)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from govgate.core.settle import QUIET_NS, FileLook, moved_in_whole, settled

S = 1_000_000_000


def look(*, mtime: float = 100.0, ctime: float | None = None, size: int = 10, inode: int = 7,
         sha: str = "a") -> FileLook:
    return FileLook(mtime_ns=int(mtime * S), ctime_ns=int((mtime if ctime is None else ctime) * S), size=size,
                    inode=inode, sha256=sha)


def test_a_file_renamed_into_place_after_its_last_write_is_settled_at_first_sight() -> None:
    renamed = look(mtime=100.0, ctime=100.2, inode=8)
    assert moved_in_whole(renamed, applied_inode=7)
    assert settled(renamed, None, applied_inode=7, now_ns=int(100.3 * S), seen_since_ns=int(100.3 * S))


def test_a_file_still_being_written_in_place_is_not_settled() -> None:
    first = look(mtime=100.0, size=10)
    growing = look(mtime=100.4, size=20, sha="b")
    assert not settled(first, None, applied_inode=7, now_ns=int(100.1 * S), seen_since_ns=int(100.1 * S))
    assert not settled(growing, first, applied_inode=7, now_ns=int(100.5 * S), seen_since_ns=int(100.5 * S))


def test_a_file_written_in_place_settles_once_quiet_for_the_whole_period() -> None:
    half = look(mtime=100.0)
    # Seen twice, unchanged, but written only 1 s ago (a writer pausing between two halves): not yet.
    assert not settled(half, half, applied_inode=7, now_ns=int(101.0 * S), seen_since_ns=int(100.5 * S))
    assert settled(half, half, applied_inode=7, now_ns=100 * S + QUIET_NS, seen_since_ns=int(100.5 * S))


def test_one_look_is_never_enough_for_a_file_written_in_place() -> None:
    old = look(mtime=50.0)  # long quiet by its time stamp, but seen once only
    assert not settled(old, None, applied_inode=7, now_ns=100 * S, seen_since_ns=100 * S)
    assert settled(old, old, applied_inode=7, now_ns=int(100.5 * S), seen_since_ns=100 * S)


def test_a_file_stamped_in_the_future_settles_by_how_long_the_watcher_saw_it_unchanged() -> None:
    future = look(mtime=500.0)
    assert not settled(future, future, applied_inode=7, now_ns=int(101.0 * S), seen_since_ns=100 * S)
    assert settled(future, future, applied_inode=7, now_ns=100 * S + QUIET_NS, seen_since_ns=100 * S)


def test_a_chmod_of_the_same_file_is_not_taken_for_a_rename() -> None:
    # Same inode as applied: a status change on the file in place proves nothing about its bytes.
    touched = look(mtime=100.0, ctime=100.5, inode=7)
    assert not moved_in_whole(touched, applied_inode=7)
    assert not moved_in_whole(look(ctime=100.5, inode=9), applied_inode=None)


@given(st.integers(0, 10**6), st.integers(1, 10**6), st.binary(min_size=1, max_size=8))
def test_a_look_that_differs_from_the_last_in_any_way_is_never_settled_by_quiet(
        gap_ms: int, size: int, sha: bytes) -> None:
    before = look(mtime=100.0, size=size, sha=sha.hex())
    for changed in (look(mtime=100.0, size=size + 1, sha=sha.hex()), look(mtime=100.0, size=size, sha=sha.hex() + "0"),
                    look(mtime=100.001, size=size, sha=sha.hex())):
        now = 200 * S + gap_ms * 1_000_000
        assert not settled(changed, before, applied_inode=7, now_ns=now, seen_since_ns=now)
