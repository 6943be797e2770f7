"""The gateway's options (govgate/serve.py ``GatewayOptions``) read as mitmproxy's own: same values, copies of
mutable ones."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mitmproxy import options
from mitmproxy.addons import core, proxyserver, tlsconfig
from mitmproxy.master import Master

from govgate.serve import GatewayOptions


def _pair() -> tuple[options.Options, GatewayOptions]:
    """Both with the options of the addons the gateway loads (the proxy's own are declared by them)."""
    theirs, ours = options.Options(), GatewayOptions()

    async def declare() -> None:  # a Master wants a running loop
        for opts in (theirs, ours):
            Master(opts, with_termlog=False).addons.add(core.Core(), proxyserver.Proxyserver(),
                                                        tlsconfig.TlsConfig())

    asyncio.run(declare())
    return theirs, ours


def test_every_option_reads_as_mitmproxys_by_default() -> None:
    theirs, ours = _pair()
    assert sorted(theirs.keys()) == sorted(ours.keys())
    for name in theirs.keys():  # noqa: SIM118 - an OptManager is not iterable
        assert getattr(ours, name) == getattr(theirs, name), name


@given(limit=st.one_of(st.none(), st.sampled_from(["1k", "10m", "3g"])), timeout=st.integers(1, 10**6),
       strategy=st.sampled_from(["eager", "lazy"]), flag=st.booleans(),
       ignore=st.lists(st.text("abc.*", min_size=1, max_size=5), max_size=3))
def test_updated_options_read_as_mitmproxys(limit: str | None, timeout: int, strategy: str, flag: bool,
                                            ignore: list[str]) -> None:
    theirs, ours = _pair()
    for o in (theirs, ours):
        o.update(body_size_limit=limit, tcp_timeout=timeout, connection_strategy=strategy,
                 validate_inbound_headers=flag, ignore_hosts=ignore)
    for name in theirs.keys():  # noqa: SIM118 - an OptManager is not iterable
        assert getattr(ours, name) == getattr(theirs, name), name


def test_a_mutable_value_is_still_a_copy() -> None:
    _, ours = _pair()
    ours.update(ignore_hosts=["a"])
    read = ours.ignore_hosts
    read.append("b")
    assert ours.ignore_hosts == ["a"]


def test_an_unknown_option_is_an_attribute_error() -> None:
    _, ours = _pair()
    with pytest.raises(AttributeError, match="No such option"):
        _ = ours.no_such_option


def test_the_start_up_state_is_frozen_and_what_comes_later_is_not() -> None:
    import gc
    import weakref

    from govgate.serve import freeze_startup_objects

    class Node:
        me: object

    before = [object()]  # a container alive before: frozen with the rest
    garbage = Node()
    garbage.me = garbage  # a cycle that is garbage already: collected first, not frozen
    gone = weakref.ref(garbage)
    del garbage
    try:
        freeze_startup_objects()
        assert gone() is None
        assert gc.get_freeze_count() > 1000
        frozen = gc.get_freeze_count()
        assert not any(o is before for o in gc.get_objects())  # out of every generation the collector scans
        later = [object()]
        assert any(o is later for o in gc.get_objects())
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
    assert any(o is before for o in gc.get_objects())
