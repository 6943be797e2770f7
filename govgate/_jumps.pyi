"""The link scanner's jumps in C (govgate/_jumps.c; ``govgate.core.html_scan.Scanners``)."""

class Jumps:
    def __init__(self, exact: tuple[bytes, ...], suffixes: tuple[bytes, ...], wild: tuple[bytes, ...]) -> None: ...
    def plain(self, buf: bytes, pos: int, stop: int, /) -> int:
        """Where ``html_scan._SKIP.match(buf, pos, stop)`` ends."""
    def same_host(self, buf: bytes, pos: int, stop: int, /) -> int:
        """Where the same-host scanner's jumps (``_SKIP`` with ``_SAFE_A``, these internal hosts) end."""
    def plain_link(self, buf: bytes, pos: int, stop: int, /) -> tuple[int, int, int, bool]:
        """``html_scan.Step`` by ``_FAST`` (with these internal hosts' values safe)."""
    def same_host_link(self, buf: bytes, pos: int, stop: int, /) -> tuple[int, int, int, bool]:
        """``html_scan.Step`` by the same-host scanner's pattern."""

def table_or_select(buf: bytes, pos: int, stop: int, /) -> int:
    """Where ``html_scan._TABLE_OR_SELECT.search(buf, pos, stop)`` starts, or -1."""

def script_end(buf: bytes, pos: int, stop: int, /) -> int:
    """``html_scan._script_end(buf, pos, stop)``: where script data ends."""
