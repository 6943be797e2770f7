"""``govgate.message_check``: mitmproxy's field check of every HTTP message, without exceptions, passing and
failing exactly the values mitmproxy's own ``check_option_type`` does."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Sequence
from typing import Any

import pytest
from mitmproxy import http
from mitmproxy.test import tflow
from mitmproxy.utils import typecheck

from govgate import message_check

# Values of every kind a field could be given by mistake, and the right ones.
VALUES: list[Any] = [None, True, False, 0, 7, -1, 0.0, 1.5, float("nan"), b"", b"GET", bytearray(b"x"), "", "host",
                     http.Headers(), http.Headers(host="a"), [], (), {}, object(), http.Request, 3j]


def verdict(check: Any, *args: Any) -> str | None:
    """None when ``check(*args)`` passes, else the message of the TypeError it raises."""
    try:
        check(*args)
    except TypeError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("cls", [http.RequestData, http.ResponseData])
def test_every_field_passes_and_fails_as_mitmproxys_check_with_the_same_message(cls: type) -> None:
    fields = dataclasses.fields(cls)
    assert {f.name for f in fields} >= {"http_version", "headers", "content", "trailers", "timestamp_end"}
    for field in fields:
        assert message_check.accepted_types(field.type) is not None, field  # each is checked by isinstance alone
        outcomes = set()
        for value in VALUES:
            data: object = object.__new__(cls)
            for other in fields:  # every other field valid, so that only this one can fail
                object.__setattr__(data, other.name, _valid(other.type))
            object.__setattr__(data, field.name, value)
            mine = verdict(message_check.check_fields, data)
            assert mine == verdict(typecheck.check_option_type, field.name, value, field.type), (field.name, value)
            outcomes.add(mine is None)
        assert outcomes == {True, False}, field.name  # the pool holds values that pass and values that fail


def _valid(annotation: Any) -> Any:
    accepted = message_check.accepted_types(annotation)
    assert accepted is not None
    for value in VALUES:
        if isinstance(value, accepted) and value is not None:
            return value
    raise AssertionError(annotation)


@pytest.mark.parametrize("annotation", [int, float, bytes, str, http.Headers, bytes | None, float | None,
                                        typing.Optional[int], typing.Union[str, bytes, None],  # noqa: UP007, UP045
                                        type(None)])
def test_accepted_types_reads_an_annotation_as_check_option_type_does(annotation: Any) -> None:
    accepted = message_check.accepted_types(annotation)
    assert accepted is not None
    for value in VALUES:
        mitm = verdict(typecheck.check_option_type, "f", value, annotation) is None
        assert isinstance(value, accepted) == mitm, (annotation, value)


@pytest.mark.parametrize("annotation", [tuple[int, int], Sequence[str], typing.Any, typing.TextIO, "str",
                                        int | tuple[int, int]])
def test_an_annotation_read_another_way_is_left_to_check_option_type(annotation: Any) -> None:
    assert message_check.accepted_types(annotation) is None


def test_a_field_left_to_check_option_type_is_checked_by_it() -> None:
    # Annotations as objects, as mitmproxy's modules have them (this module's own are strings: __future__).
    Odd = dataclasses.make_dataclass("Odd", [("pair", tuple[int, int]), ("name", str)])

    assert verdict(message_check.check_fields, Odd((1, 2), "a")) is None
    assert verdict(message_check.check_fields, Odd((1, "x"), "a")) == verdict(
        typecheck.check_option_type, "pair[1]", "x", int) is not None
    assert verdict(message_check.check_fields, Odd((1, 2), 5)) == (
        "Expected <class 'str'> for name, but got <class 'int'>.")


def test_installed_every_message_is_still_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    original = http.MessageData.__dict__["__post_init__"]
    monkeypatch.setattr(http.MessageData, "__post_init__", original)  # put back after the test
    assert message_check.install()
    assert message_check.install()  # twice is once
    assert http.MessageData.__dict__["__post_init__"] is message_check.check_fields
    flow = tflow.tflow(resp=True)  # well-formed messages are built as before
    assert flow.response is not None
    assert flow.response.status_code == 200
    with pytest.raises(TypeError, match=r"^Expected bytes \| None for content, but got <class 'int'>\.$"):
        http.Request("h", 80, b"GET", b"http", b"", b"/", b"HTTP/1.1", http.Headers(), 5,  # type: ignore[arg-type]
                     None, 0.0, None)
    with pytest.raises(TypeError, match=r"^Expected <class 'int'> for status_code, but got <class 'str'>\.$"):
        http.Response(b"HTTP/1.1", "200", b"OK", http.Headers(), b"", None, 0.0, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="for timestamp_end"):
        http.Response(b"HTTP/1.1", 200, b"OK", http.Headers(), b"", None, 0.0, "soon")  # type: ignore[arg-type]


def test_under_python_O_there_is_nothing_to_replace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(http.MessageData, "__post_init__")
    assert message_check.install() is False
    assert "__post_init__" not in http.MessageData.__dict__
