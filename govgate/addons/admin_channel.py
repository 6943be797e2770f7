"""Starts and stops the local admin channel (``govgate.admin_channel``) with the gateway, and answers it.

Only when the state lives in this process's memory (no ``state.redis``): then nothing but the gateway itself
knows which accounts are locked, and ``govgate account list`` asks it here. With Redis the command reads
the shared store itself, and several gateway processes must not contend for one socket.

Answers are read-only and hold nothing secret (Art. 30: an administrator sees the login-failure locks in
force; unlocking stays with ``govgate account unlock``, through the audited accounts file).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from govgate.admin_channel import MAX_ACCOUNTS, AdminChannelServer, Answer, socket_path
from govgate.core.accounts import ACCOUNT_NAME
from govgate.runtime import Runtime
from govgate.store.memory import MemoryStore

logger = logging.getLogger(__name__)


class AdminChannel:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.server: AdminChannelServer | None = None

    async def running(self) -> None:
        if not isinstance(self.runtime.store, MemoryStore):
            return
        server = AdminChannelServer(socket_path(self.runtime.policy.gateway.key_file), self.answer)
        if await server.start():
            self.server = server

    async def answer(self, question: dict[str, Any]) -> Answer:
        kind = question.get("question")
        if kind == "status":
            policy = self.runtime.policy
            return {"ok": True, "pid": os.getpid(), "policy_version": self.runtime.policy_version,
                    "policy_sha256": policy.sha256, "store": "memory"}
        if kind == "locks":
            names = question.get("accounts")
            if (not isinstance(names, list) or len(names) > MAX_ACCOUNTS
                    or not all(isinstance(n, str) and ACCOUNT_NAME.fullmatch(n) for n in names)):
                return {"ok": False, "error": f"expected 'accounts': a list of at most {MAX_ACCOUNTS} account names"}
            now = self.runtime.now()
            locks: dict[str, str | None] = {}
            for name in names:
                until = await self.runtime.store.account_locked_until(name, now)
                locks[name] = until.isoformat() if until is not None else None
            return {"ok": True, "now": now.isoformat(), "locks": locks}
        return {"ok": False, "error": "unknown question (expected status or locks)"}

    async def done(self) -> None:
        if self.server is not None:
            await self.server.close()
            self.server = None
