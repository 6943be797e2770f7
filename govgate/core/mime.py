"""MIME types as browsers read a ``Content-Type`` header: WHATWG MIME Sniffing "parse a MIME type" and Fetch
"extract a MIME type", the one parser of that header here (the outbound-link addon's type, the page's charset).

A browser and the gateway must agree on both, or the gateway may stream a page untouched that the browser renders
as HTML, or scan it in another encoding than the browser decodes it in (Art. 15, 第十五条): a list
(``text/plain, text/html``: the last valid type wins), a charset inside a quoted value of another parameter (not
one), spaces around "=" (no parameter), a quoted charset with a backslash escape or an unterminated quote (one).
"""

from __future__ import annotations

from dataclasses import dataclass, field

_WS = "\t\n\r "  # HTTP whitespace
_TAB_OR_SPACE = "\t "
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True, slots=True)
class MimeType:
    type: str
    subtype: str
    parameters: dict[str, str] = field(default_factory=dict)

    @property
    def essence(self) -> str:
        return f"{self.type}/{self.subtype}"

    @property
    def charset(self) -> str | None:
        return self.parameters.get("charset")


def _is_token(text: str) -> bool:
    return bool(text) and all(c in _TOKEN for c in text)


def _is_quoted_string_text(text: str) -> bool:
    return all(c == "\t" or " " <= c <= "~" or "\x80" <= c <= "\xff" for c in text)


def _collect_until(text: str, pos: int, stops: str) -> tuple[str, int]:
    end = pos
    while end < len(text) and text[end] not in stops:
        end += 1
    return text[pos:end], end


def _quoted_string(text: str, pos: int, *, extract_value: bool) -> tuple[str, int]:
    """Fetch's "collect an HTTP quoted string" from the '"' at ``pos``: (the value or the raw span, position)."""
    start = pos
    value = ""
    pos += 1
    while True:
        chunk, pos = _collect_until(text, pos, '"\\')
        value += chunk
        if pos >= len(text):
            break
        quote_or_backslash = text[pos]
        pos += 1
        if quote_or_backslash == "\\":
            if pos >= len(text):
                value += "\\"
                break
            value += text[pos]
            pos += 1
        else:
            break
    return (value if extract_value else text[start:pos]), pos


def parse_mime_type(text: str) -> MimeType | None:
    """WHATWG MIME Sniffing, "parse a MIME type": None on failure."""
    text = text.strip(_WS)
    type_, pos = _collect_until(text, 0, "/")
    if not _is_token(type_) or pos >= len(text):
        return None
    subtype, pos = _collect_until(text, pos + 1, ";")
    subtype = subtype.rstrip(_WS)
    if not _is_token(subtype):
        return None
    mime = MimeType(type_.lower(), subtype.lower())
    while pos < len(text):
        pos += 1  # the ";"
        while pos < len(text) and text[pos] in _WS:
            pos += 1
        name, pos = _collect_until(text, pos, ";=")
        name = name.lower()
        if pos < len(text):
            if text[pos] == ";":
                continue
            pos += 1  # the "="
        if pos >= len(text):
            break
        if text[pos] == '"':
            value, pos = _quoted_string(text, pos, extract_value=True)
            _, pos = _collect_until(text, pos, ";")
        else:
            value, pos = _collect_until(text, pos, ";")
            value = value.rstrip(_WS)
            if not value:
                continue
        if _is_token(name) and _is_quoted_string_text(value) and name not in mime.parameters:
            mime.parameters[name] = value
    return mime


def split_header_values(value: str) -> list[str]:
    """Fetch's "get, decode, and split" of one header's combined value: commas outside quoted strings split it."""
    values: list[str] = []
    pos = 0
    current = ""
    while True:
        chunk, pos = _collect_until(value, pos, '",')
        current += chunk
        if pos < len(value) and value[pos] == '"':
            quoted, pos = _quoted_string(value, pos, extract_value=False)
            current += quoted
            if pos < len(value):
                continue
        values.append(current.strip(_TAB_OR_SPACE))
        current = ""
        if pos >= len(value):
            return values
        pos += 1  # the ","


def extract_mime_type(content_type: str | None) -> MimeType | None:
    """Fetch's "extract a MIME type" from a ``Content-Type`` value (several fields joined by ", "): None when
    there is none or no valid type in it (a browser then sniffs)."""
    if content_type is None:
        return None
    charset: str | None = None
    essence: str | None = None
    mime: MimeType | None = None
    for value in split_header_values(content_type):
        parsed = parse_mime_type(value)
        if parsed is None or parsed.essence == "*/*":
            continue
        mime = parsed
        if mime.essence != essence:
            charset = mime.charset
            essence = mime.essence
        elif mime.charset is None and charset is not None:
            mime.parameters["charset"] = charset
    return mime


def content_type_essence(content_type: str) -> str:
    """The type a browser renders a response with ``content_type`` as: "" when it names none (the body is sniffed).

    By the standard's steps (``extract_mime_type``) where they give one; where they reject the value, Chromium's
    own parser still takes the type up to a space, "(" or ";" ("text/html x", "text/html(c)" render as HTML).
    """
    mime = extract_mime_type(content_type) if content_type else None
    if mime is not None:
        return mime.essence
    last = content_type.rsplit(",", 1)[-1].strip(_TAB_OR_SPACE)
    essence = last.split(";", 1)[0].split("(", 1)[0].split(None, 1)[0].lower() if last.strip() else ""
    kind, _, sub = essence.partition("/")
    return essence if kind and sub and "/" not in sub and essence != "*/*" else ""
