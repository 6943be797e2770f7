"""mitmproxy's type check of every HTTP message it builds, made without raising exceptions.

Every ``mitmproxy.http.Request`` and ``Response`` holds a dataclass (``RequestData``, ``ResponseData``) whose
``__post_init__`` checks each field's type with ``mitmproxy.utils.typecheck.check_option_type`` (unless Python runs
with ``-O``). That function formats a ``TypeError`` message for every field before it looks at the value, and checks
``X | None`` by trying ``X`` first: for a ``None`` field (an open message's ``content``, ``trailers``,
``timestamp_end``) it raises and catches a ``TypeError``. Six exceptions per request, each tied to its frame by its
traceback: reference cycles that only the garbage collector frees. Measured on the running gateway: about a third of
the collector's time on the public path was these exceptions, and one in three of the objects it freed.

``install()`` (called by ``govgate/serve.py``) puts in the same check without either: per dataclass, each field's
accepted types are worked out once from its annotation, exactly as ``check_option_type`` reads it (a union accepts
any of its members; ``float`` accepts an ``int`` too), and a value is checked with one ``isinstance``. The same
values pass and fail, with the same message (``tests/test_message_check.py`` compares the two on every field).
An annotation it does not know how to read (none in mitmproxy 12) keeps ``check_option_type`` for that field.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from mitmproxy import http
from mitmproxy.utils import typecheck

_UNIONS = (typing.Union, types.UnionType)

# Per dataclass: (field name, annotation, accepted classes or None to call check_option_type).
type _Spec = tuple[tuple[str, Any, tuple[type, ...] | None], ...]
_SPECS: dict[type, _Spec] = {}


def accepted_types(annotation: Any) -> tuple[type, ...] | None:
    """The classes ``check_option_type`` accepts a value of for ``annotation``, or None when it reads the annotation
    in another way than by ``isinstance`` (a tuple, a sequence, ``Any``, an IO type: left to it)."""
    origin = typing.get_origin(annotation)
    if origin in _UNIONS:
        out: tuple[type, ...] = ()
        for member in typing.get_args(annotation):
            accepted = accepted_types(member)
            if accepted is None:
                return None
            out += accepted
        return out
    if origin is not None or annotation is typing.Any or annotation in (typing.TextIO, typing.BinaryIO):
        return None
    if not isinstance(annotation, type):
        return None  # a string annotation, a TypeVar...: whatever check_option_type makes of it
    if annotation is float:
        return (float, int)  # check_option_type lets an int stand for a float
    return (annotation,)


def _spec(cls: type) -> _Spec:
    spec = _SPECS.get(cls)
    if spec is None:
        spec = _SPECS[cls] = tuple((f.name, f.type, accepted_types(f.type)) for f in dataclasses.fields(cls))
    return spec


def check_fields(data: object) -> None:
    """Raise ``TypeError`` for a field of the dataclass ``data`` whose value ``check_option_type`` would refuse."""
    for name, annotation, accepted in _spec(type(data)):
        value = getattr(data, name)
        if accepted is None:
            typecheck.check_option_type(name, value, annotation)
        elif not isinstance(value, accepted):
            raise TypeError(f"Expected {annotation} for {name}, but got {type(value)}.")


def install() -> bool:
    """Replace ``MessageData.__post_init__`` by ``check_fields`` (once); False when Python runs with ``-O`` and
    mitmproxy checks nothing (nothing to replace)."""
    current = http.MessageData.__dict__.get("__post_init__")
    if current is None:
        return False
    if current is not check_fields:
        http.MessageData.__post_init__ = check_fields  # type: ignore[method-assign]
    return True
