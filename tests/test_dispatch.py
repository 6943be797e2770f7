"""The gateway's hook dispatch (govgate/dispatch.py) behaves as mitmproxy's: order, errors, halt, update."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest
from mitmproxy import exceptions
from mitmproxy.master import Master
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
