"""The fields of a form a browser posted, read so that the Art. 15 warning page can pass them on unchanged.

A form on a portal page that submits to a non-government site is pointed at the gate's warning page
(``govgate.core.leave_link``). Submitted by POST, its fields arrive at the gate; the warning page writes them
into a form of its own, as hidden inputs, that the user may submit to the destination after the warning —
without JavaScript, in the same encoding type and the same character encoding, so the destination receives
the bytes it would have received directly (``docs/pages.md``).

``read_posted_form(body, content_type, codec)`` reads ``application/x-www-form-urlencoded`` and
``multipart/form-data`` bodies of at most ``MAX_BODY`` bytes and ``MAX_FIELDS`` fields, decoding names and
values with ``codec`` (the page's form encoding). What cannot be passed on faithfully is not passed on at
all, and says why (``NotCarried``): a file (a page cannot choose a file for the user), a ``text/plain``
body (its fields cannot be told apart reliably), text that does not decode, a NUL character (HTML turns it
into U+FFFD), too much, or a body that is not what it claims.

Pure: bytes in, values out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import unquote_to_bytes

MAX_BODY = 64 * 1024
MAX_FIELDS = 256

URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"


class NotCarried(StrEnum):
    """Why posted fields cannot be passed on."""

    TOO_LARGE = "too_large"
    TOO_MANY = "too_many"
    FILE = "file"
    KIND = "kind"  # text/plain, or no form at all
    ENCODING = "encoding"
    MALFORMED = "malformed"


@dataclass(frozen=True, slots=True)
class PostedForm:
    enctype: str  # URLENCODED or MULTIPART: the continue form submits the same way
    fields: tuple[tuple[str, str], ...]  # (name, value), in order, repeated names kept


_BOUNDARY = re.compile(r';\s*boundary\s*=\s*(?:"([^"]{1,70})"|([^\s;"]{1,70}))', re.IGNORECASE)
_DISPOSITION_PARAM = re.compile(rb';\s*(name|filename)\s*=\s*"([^"]*)"', re.IGNORECASE)


def read_posted_form(body: bytes, content_type: str, codec: str) -> PostedForm | NotCarried:
    """The fields of ``body`` (sent with ``content_type``), names and values decoded with ``codec``."""
    if len(body) > MAX_BODY:
        return NotCarried.TOO_LARGE
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime == URLENCODED:
        raw = _urlencoded(body)
    elif mime == MULTIPART:
        raw = _multipart(body, content_type)
    else:
        return NotCarried.KIND
    if isinstance(raw, NotCarried):
        return raw
    if len(raw) > MAX_FIELDS:
        return NotCarried.TOO_MANY
    fields: list[tuple[str, str]] = []
    for name, value in raw:
        try:
            pair = (name.decode(codec), value.decode(codec))
        except (UnicodeDecodeError, LookupError):
            return NotCarried.ENCODING
        if "\x00" in pair[0] or "\x00" in pair[1]:
            return NotCarried.ENCODING
        fields.append(pair)
    return PostedForm(mime, tuple(fields))


def _urlencoded(body: bytes) -> list[tuple[bytes, bytes]] | NotCarried:
    """The application/x-www-form-urlencoded parser (WHATWG URL), on bytes."""
    pairs: list[tuple[bytes, bytes]] = []
    for piece in body.split(b"&"):
        if not piece:
            continue
        name, _, value = piece.partition(b"=")
        pairs.append((unquote_to_bytes(name.replace(b"+", b" ")), unquote_to_bytes(value.replace(b"+", b" "))))
        if len(pairs) > MAX_FIELDS:
            return NotCarried.TOO_MANY
    return pairs


def _multipart(body: bytes, content_type: str) -> list[tuple[bytes, bytes]] | NotCarried:
    """RFC 7578 as browsers write it: each part a Content-Disposition ``form-data; name="…"`` and its bytes."""
    found = _BOUNDARY.search(content_type)
    if found is None:
        return NotCarried.MALFORMED
    delimiter = b"\r\n--" + (found.group(1) or found.group(2)).encode("ascii", "replace")
    chunks = (b"\r\n" + body).split(delimiter)
    if len(chunks) < 2 or chunks[0] != b"" or not chunks[-1].startswith(b"--"):
        return NotCarried.MALFORMED
    pairs: list[tuple[bytes, bytes]] = []
    for chunk in chunks[1:-1]:
        if not chunk.startswith(b"\r\n"):
            return NotCarried.MALFORMED
        head, separator, content = chunk[2:].partition(b"\r\n\r\n")
        if not separator:
            return NotCarried.MALFORMED
        name: bytes | None = None
        for line in head.split(b"\r\n"):
            key, _, rest = line.partition(b":")
            if key.strip().lower() != b"content-disposition":
                continue
            if not rest.strip().lower().startswith(b"form-data"):
                return NotCarried.MALFORMED
            params = {k.lower(): v for k, v in _DISPOSITION_PARAM.findall(rest)}
            if b"filename" in params:
                return NotCarried.FILE
            name = params.get(b"name")
        if name is None:
            return NotCarried.MALFORMED
        # Browsers escape these three in names (WHATWG HTML, "multipart/form-data encoding algorithm").
        name = name.replace(b"%0A", b"\n").replace(b"%0D", b"\r").replace(b"%22", b'"')
        pairs.append((name, content))
        if len(pairs) > MAX_FIELDS:
            return NotCarried.TOO_MANY
    return pairs
