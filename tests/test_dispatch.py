"""The gateway's hook dispatch (govgate/dispatch.py) behaves as mitmproxy's: order, errors, halt, update."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Generator
from typing import Any

import pytest
from mitmproxy import exceptions
from mitmproxy.master import Master
from mitmproxy.proxy import commands
from mitmproxy.proxy.layers.http import HttpRequestHook
from mitmproxy.test import tflow

from govgate.dispatch import HookTable


class Recorder:
    def __init__(self, name: str, calls: list[str]) -> None:
        self.name, self.calls = name, calls

    def request(self, flow: object) -> None:
        self.calls.append(f"{self.name}.request")


class AsyncRecorder(Recorder):
    async def request(self, flow: object) -> None:
        await asyncio.sleep(0)
        self.calls.append(f"{self.name}.request")


class Failing:
    def request(self, flow: object) -> None:
        raise ValueError("boom")


class Halting:
    def request(self, flow: object) -> None:
        raise exceptions.AddonHalt()


class Updates:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def update(self, flows: list[object]) -> None:
        self.calls.append("update")


def table() -> HookTable:
    master = Master(None)
    master.addons = HookTable(master)
    return master.addons


async def test_handlers_run_in_chain_order_sync_and_async() -> None:
    calls: list[str] = []
    addons = table()
    addons.add(Recorder("a", calls), AsyncRecorder("b", calls), Recorder("c", calls))
    await addons.handle_lifecycle(HttpRequestHook(tflow.tflow()))
    assert calls == ["a.request", "b.request", "c.request"]


async def test_an_addon_error_is_logged_and_the_next_addon_runs(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []
    addons = table()
    addons.add(Failing(), Recorder("after", calls))
    with caplog.at_level(logging.ERROR):
        await addons.trigger_event(HttpRequestHook(tflow.tflow()))
    assert calls == ["after.request"]
    assert "Addon error: boom" in caplog.text


async def test_addon_halt_stops_the_hook() -> None:
    calls: list[str] = []
    addons = table()
    addons.add(Recorder("a", calls), Halting(), Recorder("c", calls))
    await addons.trigger_event(HttpRequestHook(tflow.tflow()))
    assert calls == ["a.request"]


async def test_added_and_removed_addons_are_seen_and_update_runs_when_handled() -> None:
    calls: list[str] = []
    addons = table()
    first = Recorder("a", calls)
    addons.add(first)
    await addons.handle_lifecycle(HttpRequestHook(tflow.tflow()))
    addons.add(Recorder("b", calls), Updates(calls))
    addons.remove(first)
    await addons.handle_lifecycle(HttpRequestHook(tflow.tflow()))
    assert calls == ["a.request", "b.request", "update"]


def test_hook_arguments_are_mitmproxys_for_every_hook() -> None:
    # hook_args reads each hook class's fields once; what a handler gets must stay what Hook.args gives.
    from mitmproxy import hooks

    from govgate.dispatch import hook_args

    checked = 0
    for name, kind in hooks.all_hooks.items():
        values = {f.name: object() for f in dataclasses.fields(kind)}
        event = kind(**values)
        assert hook_args(event) == event.args(), name
        assert hook_args(event) == event.args(), name  # the second time from the kept names
        checked += 1
    assert checked > 20  # mitmproxy's hooks were all registered (the proxy's layers are imported above)


class _Layer:
    """A connection's top layer as ``inline_hooks`` sees it: each event's commands; a blocking hook waits for its
    ``HookCompleted``, after which the layer says so (a ``Log`` command naming the hook)."""

    def __init__(self, flow: object) -> None:
        self.flow, self.seen = flow, []  # type: ignore[var-annotated]

    def handle_event(self, event: object) -> Generator[commands.Command]:
        from mitmproxy.proxy import events

        self.seen.append(event)
        if isinstance(event, events.HookCompleted):
            yield commands.Log(f"completed {event.command.name}")
            return
        yield commands.Log("before")
        hook = HttpRequestHook(self.flow)
        hook.blocking = self  # as mitmproxy's Layer marks a command it waits for
        yield hook
        yield commands.Log("after")


class _Handler:
    """What ``inline_hooks`` needs of mitmproxy's connection handler."""

    def __init__(self) -> None:
        from mitmproxy.proxy import server

        self.client = tflow.tclient_conn()
        self.timeout_watchdog = server.TimeoutWatchdog(60, self._never)
        self.events: list[object] = []

    async def _never(self) -> None:  # pragma: no cover - the watchdog is never started here
        pass

    async def server_event(self, event: object) -> None:
        self.events.append(event)


def _messages(cmds: list[commands.Command]) -> list[str]:
    return [c.message if isinstance(c, commands.Log) else type(c).__name__ for c in cmds]


async def test_a_hook_whose_handlers_are_synchronous_is_answered_inline() -> None:
    calls: list[str] = []
    addons = table()
    addons.add(Recorder("a", calls), Recorder("b", calls))
    layer, handler = _Layer(tflow.tflow()), _Handler()
    cmds = list(addons.inline_hooks(handler, layer.handle_event, "start"))  # type: ignore[arg-type]
    # the handlers ran where the hook was raised; its HookCompleted followed the event's other commands
    assert calls == ["a.request", "b.request"]
    assert _messages(cmds) == ["before", "after", "completed request"]
    assert handler.events == []  # no task, nothing fed back later


async def test_a_hook_with_an_awaiting_handler_goes_on_in_a_task_as_mitmproxys_hook_task() -> None:
    from mitmproxy.proxy import events

    calls: list[str] = []
    addons = table()
    addons.add(Recorder("a", calls), AsyncRecorder("b", calls), Recorder("c", calls))
    layer, handler = _Layer(tflow.tflow()), _Handler()
    cmds = list(addons.inline_hooks(handler, layer.handle_event, "start"))  # type: ignore[arg-type]
    assert _messages(cmds) == ["before", "after"]  # not completed yet
    assert calls == ["a.request"]  # the first ran at once; the rest waits for the awaiting one
    for _ in range(5):
        await asyncio.sleep(0)
    assert calls == ["a.request", "b.request", "c.request"]
    assert len(handler.events) == 1
    assert isinstance(handler.events[0], events.HookCompleted)


async def test_an_intercepted_flow_waits_for_its_resume_before_the_hook_completes() -> None:
    calls: list[str] = []
    addons = table()
    addons.add(Recorder("a", calls))
    flow = tflow.tflow()
    flow.intercept()
    layer, handler = _Layer(flow), _Handler()
    cmds = list(addons.inline_hooks(handler, layer.handle_event, "start"))  # type: ignore[arg-type]
    assert _messages(cmds) == ["before", "after"]
    await asyncio.sleep(0.01)
    assert handler.events == []
    flow.resume()
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(handler.events) == 1


async def test_with_an_update_handler_the_hook_and_update_run_in_a_task() -> None:
    calls: list[str] = []
    addons = table()
    addons.add(Recorder("a", calls), Updates(calls))
    layer, handler = _Layer(tflow.tflow()), _Handler()
    cmds = list(addons.inline_hooks(handler, layer.handle_event, "start"))  # type: ignore[arg-type]
    assert _messages(cmds) == ["before", "after"]
    for _ in range(5):
        await asyncio.sleep(0)
    assert calls == ["a.request", "update"]
    assert len(handler.events) == 1


async def test_answer_hooks_inline_wraps_the_top_layer_of_a_gateway_connection_only() -> None:
    from mitmproxy.proxy import mode_servers

    from govgate.dispatch import answer_hooks_inline

    answer_hooks_inline()
    answer_hooks_inline()  # once
    assert isinstance(mode_servers.ProxyConnectionHandler.__dict__["layer"], property)

    calls: list[str] = []
    addons = table()
    addons.add(Recorder("a", calls))
    handler = object.__new__(mode_servers.ProxyConnectionHandler)
    handler.master = addons.master
    first, second = _Layer(tflow.tflow()), _Layer(tflow.tflow())
    handler.layer = first
    handler.layer = second  # as ``handle_stream`` replaces the constructor's layer
    assert handler.layer is second
    cmds = list(second.handle_event("start"))  # type: ignore[arg-type]
    assert _messages(cmds) == ["before", "after", "completed request"]
    assert calls == ["a.request"]

    plain = object.__new__(mode_servers.ProxyConnectionHandler)
    plain.master = Master(None)  # mitmproxy's own AddonManager: its own path
    third = _Layer(tflow.tflow())
    plain.layer = third
    assert "handle_event" not in vars(third)


async def test_connection_level_hooks_keep_mitmproxys_path() -> None:
    from mitmproxy.proxy import layer as mlayer

    calls: list[str] = []
    addons = table()
    addons.add(Recorder("a", calls))
    hook = mlayer.NextLayerHook(object())  # type: ignore[arg-type]

    def handle_event(event: object) -> Generator[commands.Command]:
        yield hook

    cmds = list(addons.inline_hooks(_Handler(), handle_event, "start"))  # type: ignore[arg-type]
    assert cmds == [hook]  # yielded for mitmproxy's hook_task, not run here


class Intercepting:
    def request(self, flow: Any) -> None:
        flow.intercept()


async def test_an_intercepted_flow_waits_for_resume_with_an_update_handler_too() -> None:
    # mitmproxy's handle_hook: the hook and `update`, then the flow's resume; found by review (the flow went on
    # while held whenever some addon handled `update`).
    calls: list[str] = []
    addons = table()
    addons.add(Intercepting(), Updates(calls))
    flow = tflow.tflow()
    layer, handler = _Layer(flow), _Handler()
    list(addons.inline_hooks(handler, layer.handle_event, "start"))  # type: ignore[arg-type]
    for _ in range(10):
        await asyncio.sleep(0)
    assert calls == ["update"]
    assert flow.intercepted
    assert handler.events == []  # not completed while held
    flow.resume()
    for _ in range(10):
        await asyncio.sleep(0)
    assert [type(e).__name__ for e in handler.events] == ["HookCompleted"]


class _TwoStreams:
    """Two streams' hooks raised in one event (as HTTP/2); the layer crashes on the first completion."""

    def __init__(self) -> None:
        self.completed: list[str] = []

    def handle_event(self, event: object) -> Generator[commands.Command]:
        from mitmproxy.proxy import events
        from mitmproxy.proxy.layers.http import HttpRequestHook

        if isinstance(event, events.HookCompleted):
            if event.command.flow.request.path == "/one":  # type: ignore[attr-defined]
                raise RuntimeError("layer crash on stream 1")
            self.completed.append(event.command.flow.request.path)  # type: ignore[attr-defined]
            return
        for path in ("/one", "/two"):
            f = tflow.tflow()
            f.request.path = path
            hook = HttpRequestHook(f)
            hook.blocking = self  # type: ignore[assignment]
            yield hook


async def test_a_crash_on_one_completion_leaves_the_others_to_the_connection() -> None:
    # In mitmproxy each completion is its own server_event: one stream's crash does not strand the others.
    addons = table()
    addons.add(Recorder("a", []))
    layer, handler = _TwoStreams(), _Handler()
    with pytest.raises(RuntimeError):
        list(addons.inline_hooks(handler, layer.handle_event, "start"))  # type: ignore[arg-type]
    for _ in range(10):
        await asyncio.sleep(0)
    assert [e.command.flow.request.path for e in handler.events] == ["/two"]  # type: ignore[attr-defined]
