"""Progress of long audit work (`verify`, `backup`, `show`, `report` over large logs), on a terminal only.

A bar on stderr (tqdm) when stderr is a terminal and the work lasts more than half a second
(``GOVGATE_PROGRESS_DELAY`` seconds, if set); nothing at all in scripts, cron jobs and pipes (stderr not
a TTY), so their output stays exactly what it was.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from tqdm import tqdm

from govgate.audit.verify import Progress


def on_terminal(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stderr
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@contextmanager
def progress_bar(total: int, what: str, *, stream: TextIO | None = None) -> Iterator[Progress | None]:
    """A ``Progress`` (told how many more bytes were read) drawing a bar of ``total`` bytes, or None when stderr
    is not a terminal. A negative step rewinds (a second walk over the same bytes)."""
    stream = stream or sys.stderr
    if not on_terminal(stream) or total <= 0:
        yield None
        return
    try:
        delay = float(os.environ.get("GOVGATE_PROGRESS_DELAY", "0.5"))
    except ValueError:
        delay = 0.5
    try:
        size = os.get_terminal_size(stream.fileno())
        sized = size.lines > 1 and size.columns > 20
    except (OSError, ValueError, AttributeError):
        sized = False  # a terminal that does not say its size: tqdm would draw nothing, so give it one
    bar = tqdm(total=total, desc=what, unit="B", unit_scale=True, unit_divisor=1024, file=stream, leave=False,
               delay=delay, dynamic_ncols=sized, mininterval=0.2, ncols=None if sized else 80,
               nrows=None if sized else 24)

    def step(n: int) -> None:
        if n < 0:
            bar.reset(total=bar.total)
        else:
            bar.update(n)

    try:
        yield step
    finally:
        bar.close()
