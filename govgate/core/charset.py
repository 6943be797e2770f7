"""Which character encoding a browser would use to read an HTML response (WHATWG Encoding + HTML §13.2.3).

Owns: the WHATWG label table, the BOM check, the HTTP ``Content-Type`` charset and the ``<meta>``
prescan of the first 1024 bytes, with windows-1252 as the default. Also says, for each encoding,
whether a scanner (``html_scan``) may work on the raw bytes (true for every ASCII-compatible encoding whose
multi-byte sequences never use the bytes ``< > " ' = / !`` or whitespace) and which Python codec
decodes attribute values and percent-encodes URL queries the way the browser does.
"""

from __future__ import annotations

import codecs
import functools
import re
from dataclasses import dataclass
from enum import StrEnum

from govgate.core.mime import extract_mime_type


class EncodingSource(StrEnum):
    BOM = "bom"
    HTTP = "http"
    META = "meta"
    DEFAULT = "default"


@dataclass(frozen=True, slots=True)
class Encoding:
    name: str  # WHATWG name, e.g. "GBK", "UTF-8"
    codec: str  # Python codec that decodes like the WHATWG decoder (closest available)
    source: EncodingSource
    bom_length: int = 0

    @property
    def byte_scannable(self) -> bool:
        """True when markup can be found in the raw bytes (ASCII bytes always mean ASCII characters)."""
        return self.name not in _NOT_BYTE_SCANNABLE

    @property
    def url_codec(self) -> str:
        """Encoding for URL query strings: UTF-8 for UTF-16 documents (WHATWG "get an output encoding")."""
        if self.name in ("UTF-16LE", "UTF-16BE", "replacement"):
            return "utf-8"
        return _URL_CODECS.get(self.name, self.codec)


_NOT_BYTE_SCANNABLE = frozenset({"UTF-16LE", "UTF-16BE", "ISO-2022-JP", "replacement"})

# WHATWG name → Python codec. GBK's decoder *is* the gb18030 decoder; Big5 includes HKSCS;
# Shift_JIS and EUC-KR are the Windows supersets.
_CODECS: dict[str, str] = {
    "UTF-8": "utf-8", "IBM866": "cp866", "ISO-8859-2": "iso8859_2", "ISO-8859-3": "iso8859_3",
    "ISO-8859-4": "iso8859_4", "ISO-8859-5": "iso8859_5", "ISO-8859-6": "iso8859_6", "ISO-8859-7": "iso8859_7",
    "ISO-8859-8": "iso8859_8", "ISO-8859-8-I": "iso8859_8", "ISO-8859-10": "iso8859_10",
    "ISO-8859-13": "iso8859_13", "ISO-8859-14": "iso8859_14", "ISO-8859-15": "iso8859_15",
    "ISO-8859-16": "iso8859_16", "KOI8-R": "koi8_r", "KOI8-U": "koi8_u", "macintosh": "mac_roman",
    "windows-874": "cp874", "windows-1250": "cp1250", "windows-1251": "cp1251", "windows-1252": "cp1252",
    "windows-1253": "cp1253", "windows-1254": "cp1254", "windows-1255": "cp1255", "windows-1256": "cp1256",
    "windows-1257": "cp1257", "windows-1258": "cp1258", "x-mac-cyrillic": "mac_cyrillic",
    "GBK": "gb18030", "gb18030": "gb18030", "Big5": "big5hkscs", "EUC-JP": "euc_jp",
    "ISO-2022-JP": "iso2022_jp", "Shift_JIS": "cp932", "EUC-KR": "cp949", "replacement": "utf-8",
    "UTF-16BE": "utf-16-be", "UTF-16LE": "utf-16-le", "x-user-defined": "latin-1",
}
_URL_CODECS: dict[str, str] = {"GBK": "gbk", "Big5": "big5"}


def _labels() -> dict[str, str]:
    table: dict[str, str] = {}

    def add(name: str, *labels: str) -> None:
        for label in labels:
            table[label] = name

    add("UTF-8", "unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "utf-8", "utf8", "x-unicode20utf8")
    add("IBM866", "866", "cp866", "csibm866", "ibm866")
    add("ISO-8859-2", "csisolatin2", "iso-8859-2", "iso-ir-101", "iso8859-2", "iso88592", "iso_8859-2",
        "iso_8859-2:1987", "l2", "latin2")
    add("ISO-8859-3", "csisolatin3", "iso-8859-3", "iso-ir-109", "iso8859-3", "iso88593", "iso_8859-3",
        "iso_8859-3:1988", "l3", "latin3")
    add("ISO-8859-4", "csisolatin4", "iso-8859-4", "iso-ir-110", "iso8859-4", "iso88594", "iso_8859-4",
        "iso_8859-4:1988", "l4", "latin4")
    add("ISO-8859-5", "csisolatincyrillic", "cyrillic", "iso-8859-5", "iso-ir-144", "iso8859-5", "iso88595",
        "iso_8859-5", "iso_8859-5:1988")
    add("ISO-8859-6", "arabic", "asmo-708", "csiso88596e", "csiso88596i", "csisolatinarabic", "ecma-114",
        "iso-8859-6", "iso-8859-6-e", "iso-8859-6-i", "iso-ir-127", "iso8859-6", "iso88596", "iso_8859-6",
        "iso_8859-6:1987")
    add("ISO-8859-7", "csisolatingreek", "ecma-118", "elot_928", "greek", "greek8", "iso-8859-7", "iso-ir-126",
        "iso8859-7", "iso88597", "iso_8859-7", "iso_8859-7:1987", "sun_eu_greek")
    add("ISO-8859-8", "csiso88598e", "csisolatinhebrew", "hebrew", "iso-8859-8", "iso-8859-8-e", "iso-ir-138",
        "iso8859-8", "iso88598", "iso_8859-8", "iso_8859-8:1988", "visual")
    add("ISO-8859-8-I", "csiso88598i", "iso-8859-8-i", "logical")
    add("ISO-8859-10", "csisolatin6", "iso-8859-10", "iso-ir-157", "iso8859-10", "iso885910", "l6", "latin6")
    add("ISO-8859-13", "iso-8859-13", "iso8859-13", "iso885913")
    add("ISO-8859-14", "iso-8859-14", "iso8859-14", "iso885914")
    add("ISO-8859-15", "csisolatin9", "iso-8859-15", "iso8859-15", "iso885915", "iso_8859-15", "l9")
    add("ISO-8859-16", "iso-8859-16")
    add("KOI8-R", "cskoi8r", "koi", "koi8", "koi8-r", "koi8_r")
    add("KOI8-U", "koi8-ru", "koi8-u")
    add("macintosh", "csmacintosh", "mac", "macintosh", "x-mac-roman")
    add("windows-874", "dos-874", "iso-8859-11", "iso8859-11", "iso885911", "tis-620", "windows-874")
    for n in range(1250, 1259):
        add(f"windows-{n}", f"cp{n}", f"windows-{n}", f"x-cp{n}")
    add("windows-1252", "ansi_x3.4-1968", "ascii", "cp819", "csisolatin1", "ibm819", "iso-8859-1", "iso-ir-100",
        "iso8859-1", "iso88591", "iso_8859-1", "iso_8859-1:1987", "l1", "latin1", "us-ascii")
    add("windows-1254", "csisolatin5", "iso-8859-9", "iso-ir-148", "iso8859-9", "iso88599", "iso_8859-9",
        "iso_8859-9:1989", "l5", "latin5")
    add("x-mac-cyrillic", "x-mac-cyrillic", "x-mac-ukrainian")
    add("GBK", "chinese", "csgb2312", "csiso58gb231280", "gb2312", "gb_2312", "gb_2312-80", "gbk", "iso-ir-58",
        "x-gbk")
    add("gb18030", "gb18030")
    add("Big5", "big5", "big5-hkscs", "cn-big5", "csbig5", "x-x-big5")
    add("EUC-JP", "cseucpkdfmtjapanese", "euc-jp", "x-euc-jp")
    add("ISO-2022-JP", "csiso2022jp", "iso-2022-jp")
    add("Shift_JIS", "csshiftjis", "ms932", "ms_kanji", "shift-jis", "shift_jis", "sjis", "windows-31j", "x-sjis")
    add("EUC-KR", "cseuckr", "csksc56011987", "euc-kr", "iso-ir-149", "korean", "ks_c_5601-1987",
        "ks_c_5601-1989", "ksc5601", "ksc_5601", "windows-949")
    add("replacement", "csiso2022kr", "hz-gb-2312", "iso-2022-cn", "iso-2022-cn-ext", "iso-2022-kr", "replacement")
    add("UTF-16BE", "unicodefffe", "utf-16be")
    add("UTF-16LE", "csunicode", "iso-10646-ucs-2", "ucs-2", "unicode", "unicodefeff", "utf-16", "utf-16le")
    add("x-user-defined", "x-user-defined")
    return table


LABELS: dict[str, str] = _labels()
for _name in set(LABELS.values()):  # every name must have a working Python codec
    codecs.lookup(_CODECS[_name])


def lookup_label(label: str) -> str | None:
    """WHATWG "get an encoding": trim ASCII whitespace, lower-case, look up; None when unknown."""
    return LABELS.get(label.strip("\t\n\f\r ").lower())


def codec_of(name: str) -> str | None:
    """The Python codec of a WHATWG encoding name (``GBK`` → ``gb18030``); None for a name that is not one."""
    return _CODECS.get(name)


def _make(name: str, source: EncodingSource, bom_length: int = 0) -> Encoding:
    return Encoding(name=name, codec=_CODECS[name], source=source, bom_length=bom_length)


# What a browser reads a page in that names no encoding (WHATWG's default; a browser may guess otherwise).
DEFAULT_ENCODING = _make("windows-1252", EncodingSource.DEFAULT)


@functools.lru_cache(maxsize=256)
def _http_charset(content_type: str) -> str | None:
    """The WHATWG name of the encoding ``content_type``'s charset names, if any (memoised: a handful of values)."""
    mime = extract_mime_type(content_type)
    return lookup_label(mime.charset) if mime is not None and mime.charset is not None else None


def sniff_encoding(body: bytes, content_type: str | None) -> Encoding:
    """The encoding a browser uses: BOM, then HTTP charset, then ``<meta>`` prescan, else windows-1252."""
    if body.startswith(b"\xef\xbb\xbf"):
        return _make("UTF-8", EncodingSource.BOM, 3)
    if body.startswith(b"\xfe\xff"):
        return _make("UTF-16BE", EncodingSource.BOM, 2)
    if body.startswith(b"\xff\xfe"):
        return _make("UTF-16LE", EncodingSource.BOM, 2)
    name = _http_charset(content_type) if content_type else None
    if name is not None:
        return _make(name, EncodingSource.HTTP)
    name = prescan(body[:1024])
    if name is not None:
        return _make(name, EncodingSource.META)
    return DEFAULT_ENCODING


_XML_DECL = re.compile(rb"<[?]xml[\t\n\r ][^>]*?encoding[\t\n\r ]*=[\t\n\r ]*[\"']([A-Za-z0-9._:-]+)[\"']")


def sniff_xml_encoding(body: bytes, content_type: str | None) -> Encoding:
    """The encoding of an XML (XHTML) document: BOM, HTTP charset, the XML declaration, else UTF-8."""
    bom_or_http = sniff_encoding(body, content_type)
    if bom_or_http.source in (EncodingSource.BOM, EncodingSource.HTTP):
        return bom_or_http
    m = _XML_DECL.match(body)
    if m is not None:
        name = lookup_label(m.group(1).decode("ascii"))
        if name is not None:
            return _make(name, EncodingSource.META)
    return _make("UTF-8", EncodingSource.DEFAULT)


# ---- the prescan (HTML §13.2.3.2 "prescan a byte stream to determine its encoding") ----

_WS = b"\t\n\f\r "
_COMMENT_END = re.compile(rb"-->")
_META_OPEN = re.compile(rb"<meta[\t\n\f\r /]", re.IGNORECASE)
_TAG_OPEN = re.compile(rb"</?[A-Za-z]")


def prescan(data: bytes) -> str | None:
    pos, n = 0, len(data)
    while pos < n:
        if data.startswith(b"<!--", pos):
            m = _COMMENT_END.search(data, pos + 2)
            if m is None:
                return None
            pos = m.end()
            continue
        if _META_OPEN.match(data, pos):
            pos += 5
            found = _prescan_meta(data, pos)
            pos = found[1]
            if found[0] is not None:
                return found[0]
            continue
        if _TAG_OPEN.match(data, pos):
            while pos < n and data[pos] not in _WS and data[pos] != 0x3E:
                pos += 1
            while True:
                attr, pos = _get_attribute(data, pos)
                if attr is None:
                    break
            pos += 1
            continue
        if data.startswith((b"<!", b"</", b"<?"), pos):
            end = data.find(b">", pos)
            if end < 0:
                return None
            pos = end + 1
            continue
        pos += 1
    return None


def _prescan_meta(data: bytes, pos: int) -> tuple[str | None, int]:
    seen: set[bytes] = set()
    got_pragma = False
    need_pragma: bool | None = None
    charset: str | None = None
    while True:
        attr, pos = _get_attribute(data, pos)
        if attr is None:
            break
        name, value = attr
        if name in seen:
            continue
        seen.add(name)
        if name == b"http-equiv":
            if value == b"content-type":
                got_pragma = True
        elif name == b"content":
            if charset is None:
                found = extract_charset(value.decode("latin-1"))
                if found is not None:
                    charset = lookup_label(found)
                    need_pragma = True
        elif name == b"charset":
            charset = lookup_label(value.decode("latin-1"))
            need_pragma = False
    pos += 1
    if need_pragma is None or (need_pragma and not got_pragma) or charset is None:
        return None, pos
    if charset in ("UTF-16LE", "UTF-16BE"):
        charset = "UTF-8"
    elif charset == "x-user-defined":
        charset = "windows-1252"
    return charset, pos


def _get_attribute(data: bytes, pos: int) -> tuple[tuple[bytes, bytes] | None, int]:
    """HTML "get an attribute" for the prescan; values are lower-cased ASCII as the algorithm says."""
    n = len(data)
    while pos < n and (data[pos] in _WS or data[pos] == 0x2F):
        pos += 1
    if pos >= n or data[pos] == 0x3E:
        return None, pos
    name = bytearray()
    value = bytearray()
    while True:
        if pos >= n:
            return None, pos
        c = data[pos]
        if c == 0x3D and name:
            pos += 1
            break
        if c in _WS:
            while pos < n and data[pos] in _WS:
                pos += 1
            if pos < n and data[pos] == 0x3D:
                pos += 1
                break
            return (bytes(name), b""), pos
        if c in (0x2F, 0x3E):
            return (bytes(name), b""), pos
        name.append(c + 0x20 if 0x41 <= c <= 0x5A else c)
        pos += 1
    while pos < n and data[pos] in _WS:
        pos += 1
    if pos >= n:
        return None, pos
    c = data[pos]
    if c in (0x22, 0x27):
        end = data.find(bytes([c]), pos + 1)
        if end < 0:
            return None, n
        raw = data[pos + 1:end]
        return (bytes(name), raw.lower()), end + 1
    if c == 0x3E:
        return (bytes(name), b""), pos
    while pos < n and data[pos] not in _WS and data[pos] != 0x3E:
        c = data[pos]
        value.append(c + 0x20 if 0x41 <= c <= 0x5A else c)
        pos += 1
    if pos >= n:
        return None, pos
    return (bytes(name), bytes(value)), pos


_CHARSET_WORD = re.compile(r"charset", re.IGNORECASE)


def extract_charset(content: str) -> str | None:
    """HTML "extracting a character encoding from a meta element" (the ``content`` attribute)."""
    pos = 0
    while True:
        m = _CHARSET_WORD.search(content, pos)
        if m is None:
            return None
        pos = m.end()
        while pos < len(content) and content[pos] in "\t\n\f\r ":
            pos += 1
        if pos < len(content) and content[pos] == "=":
            break
    pos += 1
    while pos < len(content) and content[pos] in "\t\n\f\r ":
        pos += 1
    if pos >= len(content):
        return None
    c = content[pos]
    if c in "\"'":
        end = content.find(c, pos + 1)
        return content[pos + 1:end] if end >= 0 else None
    end = pos
    while end < len(content) and content[end] not in "\t\n\f\r ;":
        end += 1
    return content[pos:end] or None
