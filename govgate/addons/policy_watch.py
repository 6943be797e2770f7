"""Hot reload: picks up edits to policy.yaml, the GeoIP database and the accounts file, and on SIGHUP.

A file saved atomically (written beside and renamed over) is applied at the next poll, within 0.5 s; one
written in place once it has stopped changing for 1.5 s (``govgate.core.settle``), so a half-written
policy is never in force.

A broken edit is refused (every problem logged and audited) and the last good policy stays in force
(see ``Runtime.reload``). Changes to where the gateway listens or what it forwards to are applied
to mitmproxy's options after a good reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

from govgate.core.policy.model import Policy
from govgate.runtime import Runtime

if TYPE_CHECKING:
    from govgate.live_runtime import FileChanges

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5


class PolicyWatch:
    def __init__(self, runtime: Runtime, on_reload: Callable[[Policy, Policy], None]) -> None:
        self.runtime = runtime
        self.on_reload = on_reload
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()

    async def running(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, self._reload_soon, "SIGHUP", True)
        self._task = asyncio.create_task(self._watch(), name="govgate policy watch")

    def _reload_soon(self, why: str, force: bool) -> None:
        task = asyncio.get_running_loop().create_task(self._reload(why, force=force))
        self._pending.add(task)  # keep a reference until it finishes
        task.add_done_callback(self._pending.discard)

    async def _reload(self, why: str, *, force: bool = False, changes: FileChanges | None = None) -> None:
        before = self.runtime.policy
        if await self.runtime.reload(why=why, force=force, changes=changes):
            self.on_reload(before, self.runtime.policy)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                # Only a settled file is applied (govgate.core.settle): never a half-written one.
                changes = await asyncio.to_thread(self.runtime.changed_files)
                if changes is not None and changes.policy_missing:
                    await self._reload("policy.yaml is gone", force=True)  # refused: says so in health and audit
                elif changes is not None:
                    await self._reload("file change", changes=changes)
            except Exception:
                # Never let the watcher die: log, keep the last good policy, try again next tick.
                logger.exception("policy.watch error")

    async def done(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
