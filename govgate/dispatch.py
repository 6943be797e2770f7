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

``answer_hooks_inline`` (installed by ``govgate/serve.py``) spares the round trip mitmproxy makes for every hook
a layer raises (``requestheaders``, ``request``, ``responseheaders``, ``response``, the TLS and next-layer hooks):
its connection handler turns each into an ``asyncio`` task of its own (a ``Task``, its debug name, a loop
iteration, the watchdog's disarming, the connection's event lock again) that runs the handlers and then feeds
``HookCompleted`` back through the layers. With ``HookTable`` the handlers are run where the hook is raised; when
all of them finish without awaiting anything (the usual case: the gate's handlers are synchronous unless they
wait for the store), ``HookCompleted`` is handed to the layers straight after the commands of the same event,
within the same ``server_event``; a handler that returns an awaitable, or a flow left intercepted, continues in
a task exactly as mitmproxy's ``hook_task`` would. Same handlers, same order, same errors; what changes is only
that no other connection's events run between a hook and its synchronous handlers.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import inspect
import logging
import types
from collections.abc import Awaitable, Callable, Generator
from typing import Any

from mitmproxy import exceptions, flow, hooks
from mitmproxy.addonmanager import AddonManager, cut_traceback, traverse
from mitmproxy.proxy import commands, events, mode_servers
from mitmproxy.proxy.layers.http import _hooks as http_hooks
from mitmproxy.utils import asyncio_utils

logger = logging.getLogger("mitmproxy.addonmanager")  # where mitmproxy logs addon errors (errorcheck reads them)

type Handler = Callable[..., Any]

# The hooks answered inline (``answer_hooks_inline``): the four of every HTTP request. Connection-level hooks
# (``next_layer``, the TLS hooks, ...) keep mitmproxy's own path: they change the layer stack itself, and are raised
# once per connection, not per request.
INLINE_HOOKS: frozenset[type[commands.StartHook]] = frozenset({
    http_hooks.HttpRequestHeadersHook, http_hooks.HttpRequestHook, http_hooks.HttpResponseHeadersHook,
    http_hooks.HttpResponseHook,
})


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
    def _run(self, handlers: tuple[Handler, ...], args: list[Any], start: int) -> Awaitable[None] | None:
        """Call ``handlers[start:]`` in order with ``args`` until one returns an awaitable: then the rest of the
        hook is returned as one (awaiting it, then the handlers after it); ``None`` once the hook is done."""
        for index in range(start, len(handlers)):
            try:
                res = handlers[index](*args)
                if res is not None and inspect.isawaitable(res):
                    return self._resume(res, handlers, args, index)
            except exceptions.AddonHalt:
                return None
            except exceptions.OptionsError:
                raise
            except Exception as exc:  # as mitmproxy's safecall: log, and the next addon runs
                tb = cut_traceback(exc.__traceback__, "_run")  # type: ignore[no-untyped-call]
                logger.error(f"Addon error: {exc}", exc_info=(type(exc), exc, tb))
        return None

    async def _resume(self, pending: Awaitable[Any], handlers: tuple[Handler, ...], args: list[Any],
                      index: int) -> None:
        try:
            await pending
        except exceptions.AddonHalt:
            return
        except exceptions.OptionsError:
            raise
        except Exception as exc:
            tb = cut_traceback(exc.__traceback__, "_resume")  # type: ignore[no-untyped-call]
            logger.error(f"Addon error: {exc}", exc_info=(type(exc), exc, tb))
        rest = self._run(handlers, args, index + 1)
        if rest is not None:
            await rest

    async def trigger_event(self, event: hooks.Hook) -> None:
        handlers = self.handlers(event.name)
        if not handlers:
            return
        rest = self._run(handlers, hook_args(event), 0)
        if rest is not None:
            await rest

    async def handle_lifecycle(self, event: hooks.Hook) -> None:
        await self.trigger_event(event)
        if self.handlers("update"):
            message = hook_args(event)[0]
            if isinstance(message, flow.Flow):
                await self.trigger_event(hooks.UpdateHook([message]))

    # -- hooks raised by a connection's layers ------------------------------------------------------------
    def inline_hooks(self, handler: mode_servers.ProxyConnectionHandler,
                     handle_event: Callable[[events.Event], Generator[commands.Command, Any, None]],
                     event: events.Event) -> Generator[commands.Command, Any, None]:
        """The connection's top layer's ``handle_event`` (``answer_hooks_inline``): its commands, less the hooks
        answered here, followed by the commands of their ``HookCompleted`` events, in the order raised."""
        completed: collections.deque[events.Event] | None = None
        while True:
            try:
                for command in handle_event(event):
                    if isinstance(command, commands.StartHook) and type(command) in INLINE_HOOKS:
                        if self._start_hook(handler, command) and command.blocking:
                            if completed is None:
                                completed = collections.deque()
                            completed.append(events.HookCompleted(command))
                        continue
                    yield command
            except Exception:
                # The layer failed (mitmproxy logs its crash): the completions still queued behind it (other
                # HTTP/2 streams' hooks) each go back to the connection on their own, as mitmproxy's tasks would.
                while completed:
                    asyncio_utils.create_task(handler.server_event(completed.popleft()), name="hook completed",
                                              keep_ref=True, client=handler.client.peername)
                raise
            if not completed:
                return
            event = completed.popleft()

    def _start_hook(self, handler: mode_servers.ProxyConnectionHandler, hook: commands.StartHook) -> bool:
        """Run ``hook``'s handlers now; ``True`` if it is done, ``False`` if it goes on in a task of its own, which
        (as mitmproxy's ``hook_task``) feeds ``HookCompleted`` to the connection when it is."""
        args = hook_args(hook)
        data = args[0] if len(args) == 1 else None  # the flow: waited for when left intercepted, in either case
        if self.handlers("update"):  # mitmproxy's order: the hook, then `update`, both in the task
            rest: Awaitable[None] | None = self.handle_lifecycle(hook)
        else:
            handlers = self.handlers(hook.name)
            try:
                rest = self._run(handlers, args, 0) if handlers else None
            except Exception:  # an OptionsError: as in mitmproxy's task, the hook is not completed
                logger.error(f"Addon error in {hook.name}", exc_info=True)
                return False
            if rest is None and not (isinstance(data, flow.Flow) and data.intercepted):
                return True
        asyncio_utils.create_task(_finish_hook(handler, hook, rest, data), name=f"handle_hook({hook.name})",
                                  keep_ref=True, client=handler.client.peername)
        return False


async def _finish_hook(handler: mode_servers.ProxyConnectionHandler, hook: commands.StartHook,
                       rest: Awaitable[None] | None, data: object) -> None:
    """The rest of ``ProxyConnectionHandler.hook_task`` for a hook whose handlers went on awaiting."""
    with handler.timeout_watchdog.disarm():
        if rest is not None:
            await rest
        if isinstance(data, flow.Flow):
            await data.wait_for_resume()  # type: ignore[no-untyped-call]
    if hook.blocking:
        await handler.server_event(events.HookCompleted(hook))


def answer_hooks_inline() -> None:
    """Install (once): the top layer of each client connection (``ProxyConnectionHandler.layer``, which mitmproxy
    sets in the constructor and again in ``handle_stream``) answers its hooks through ``HookTable.inline_hooks``
    when the master's addon manager is a ``HookTable`` (mitmproxy's own path otherwise)."""
    handler_class = mode_servers.ProxyConnectionHandler
    if isinstance(handler_class.__dict__.get("layer"), property):
        return

    def get_layer(self: mode_servers.ProxyConnectionHandler) -> Any:
        return self.__dict__["_govgate_layer"]

    def set_layer(self: mode_servers.ProxyConnectionHandler, top: Any) -> None:
        self.__dict__["_govgate_layer"] = top
        table = getattr(getattr(self, "master", None), "addons", None)
        if isinstance(table, HookTable) and "handle_event" not in top.__dict__:
            setattr(top, "handle_event", functools.partial(table.inline_hooks, self, top.handle_event))  # noqa: B010

    handler_class.layer = property(get_layer, set_layer)  # type: ignore[assignment]
