"""Event dispatch for the gateway's master: mitmproxy's ``AddonManager`` with each hook's handlers looked up once.

mitmproxy dispatches every hook (``requestheaders``, ``request``, ``responseheaders``, ``response``, ...) by
walking the whole addon chain: per addon, a coroutine, a ``safecall`` context manager, a generator over the
addon and its children and a ``getattr`` — whether or not the addon handles the hook — and after every hook
that carries a flow it dispatches an ``update`` hook the same way. With the gateway's ~20 addons that is ~160
coroutines per request that do nothing (docs/performance.md has the profile).

``HookTable`` keeps the same order and the same error handling (an addon's error is logged and the next addon
runs; ``AddonHalt`` stops the hook; ``OptionsError`` propagates) but keeps, per hook name, the list of
handlers that exist, rebuilt whenever an addon is added or removed, and calls a synchronous handler without a
coroutine around it. The ``update`` hook is dispatched only when some addon handles it.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import types
from collections.abc import Callable
from typing import Any

from mitmproxy import exceptions, flow, hooks
from mitmproxy.addonmanager import AddonManager, cut_traceback, traverse

logger = logging.getLogger("mitmproxy.addonmanager")  # where mitmproxy logs addon errors (errorcheck reads them)

type Handler = Callable[..., Any]


_FIELD_NAMES: dict[type[hooks.Hook], tuple[str, ...]] = {}  # a few dozen hook classes at most


def _field_names(kind: type[hooks.Hook]) -> tuple[str, ...]:
    """A hook class's fields, its handlers' arguments in order (``Hook.args`` reads them with ``dataclasses.fields``
    at every call; a class's fields never change)."""
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = tuple(f.name for f in dataclasses.fields(kind))  # type: ignore[arg-type]
    return names


def hook_args(event: hooks.Hook) -> list[Any]:
    """``event.args()``, the field names looked up once per hook class (unless a class has its own ``args``)."""
    kind = type(event)
    if kind.args is not hooks.Hook.args:
        return event.args()
    return [getattr(event, name) for name in _field_names(kind)]


class HookTable(AddonManager):
    def __init__(self, master: Any) -> None:
        super().__init__(master)  # type: ignore[no-untyped-call]
        self._handlers: dict[str, tuple[Handler, ...]] = {}

    # -- keeping the table in step with the chain --------------------------------------------------------
    def add(self, *addons: Any) -> None:
        self._handlers.clear()
        super().add(*addons)  # type: ignore[no-untyped-call]
        self._handlers.clear()

    def remove(self, addon: Any) -> None:
        self._handlers.clear()
        super().remove(addon)  # type: ignore[no-untyped-call]
        self._handlers.clear()

    def clear(self) -> None:
        self._handlers.clear()
        super().clear()  # type: ignore[no-untyped-call]
        self._handlers.clear()

    def handlers(self, name: str) -> tuple[Handler, ...]:
        """The callables that handle hook ``name``, in chain order (an addon, then its children)."""
        found = self._handlers.get(name)
        if found is None:
            found = tuple(func for addon in self.chain for a in traverse([addon])  # type: ignore[no-untyped-call]
                          if callable(func := getattr(a, name, None)) and not isinstance(func, types.ModuleType))
            self._handlers[name] = found
        return found

    # -- dispatch ------------------------------------------------------------------------------------------
    async def trigger_event(self, event: hooks.Hook) -> None:
        handlers = self.handlers(event.name)
        if not handlers:
            return
        args = hook_args(event)
        for func in handlers:
            try:
                res = func(*args)
                if res is not None and inspect.isawaitable(res):
                    await res
            except exceptions.AddonHalt:
                return
            except exceptions.OptionsError:
                raise
            except Exception as exc:  # as mitmproxy's safecall: log, and the next addon runs
                tb = cut_traceback(exc.__traceback__, "trigger_event")  # type: ignore[no-untyped-call]
                logger.error(f"Addon error: {exc}", exc_info=(type(exc), exc, tb))

    async def handle_lifecycle(self, event: hooks.Hook) -> None:
        await self.trigger_event(event)
        if self.handlers("update"):
            message = hook_args(event)[0]
            if isinstance(message, flow.Flow):
                await self.trigger_event(hooks.UpdateHook([message]))
