"""The reader toolkit of the policy validator: one ``Reader`` per policy, and the typed readers every
section check reads its values through.

``Problems`` is the one collector every section reports into (``file:line: key.path: message``).
``Reader.section`` checks a mapping against its key table in ``schema.py`` (unknown keys with a
"did you mean", required keys) and gives a ``Section``; ``Reader.string``, ``boolean``, ``integer``,
``duration``, ``choice``, ``path_value``, ``cidr``, ``host``, ``hostport``, ``name_list``,
``countries``, ``moment`` and ``day`` read one value each, report what was expected and what was
found, and return the normalised value (or a default / None). The reader also keeps what reading
one policy carries along: its folder (relative paths resolve against it), ``gateway.timezone`` (grant
times are read in it) and the files the policy names (``named_files.py``).
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from zoneinfo import ZoneInfo

from govgate.core.countries import country_problem
from govgate.core.durations import parse_duration
from govgate.core.policy import schema
from govgate.core.policy.model import HostPort, IPNetwork
from govgate.core.policy.named_files import FileKind, NamedFile
from govgate.core.policy.parsers import parse_hostport, policy_host
from govgate.core.yaml_tree import YMap, YNode, YScalar, YSeq
from govgate.errors import PolicyProblem

DEFAULT_TIMEZONE = "Asia/Shanghai"

NAME = re.compile(schema.NAME_PATTERN)
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_MAX_INTEGER = 10**9  # counts and days: anything larger is a typo
_MINUTE_PRECISION = re.compile(r"[T ]\d{1,2}:\d{2}(?:$|[+\-Z ])")


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def found(node: YNode | None) -> str:
    """How a value reads in a message: ``the string 'x'``, ``a list``, ``nothing``."""
    if node is None:
        return "nothing"
    if isinstance(node, YMap):
        return "a mapping"
    if isinstance(node, YSeq):
        return "a list"
    match node.kind:
        case "null":
            return "nothing (null)"
        case "bool":
            return f"the boolean {node.text}"
        case "int":
            return f"the integer {node.text}"
        case "float":
            return f"the number {node.text}"
        case "timestamp":
            return f"the date {node.text}"
    return f"the string {node.text!r}"


@dataclass(slots=True)
class Problems:
    """The one collector every section reports into."""

    file: str
    items: list[PolicyProblem] = field(default_factory=list)

    def add(self, where: YNode | int, path: str, message: str) -> None:
        line = where if isinstance(where, int) else where.line
        self.items.append(PolicyProblem(self.file, line, path, message))


@dataclass(slots=True)
class Section:
    """A mapping checked against its key table: only keys the table names may be read."""

    node: YMap
    obj: schema.Obj
    path: str
    values: dict[str, YNode]
    own_line: int  # the line of the key this mapping is the value of
    key_lines: dict[str, int]

    def get(self, name: str) -> YNode | None:
        self.obj.key(name)  # a key the table does not name is a programming error
        return self.values.get(name)

    def where(self, name: str) -> YNode | int:
        return self.values.get(name, self.own_line)

    def line(self, name: str) -> int:
        """The line of key ``name``, or of this mapping's own key when ``name`` is absent."""
        return self.key_lines.get(name, self.own_line)

    def at(self, name: str) -> str:
        return join(self.path, name)


class Reader:
    """Reads one policy's values: reports into ``p``, resolves paths against ``base``, reads times in ``tz``."""

    def __init__(self, file: str, source: Path) -> None:
        self.p = Problems(file)
        self.base = source.parent
        self.tz = ZoneInfo(DEFAULT_TIMEZONE)
        self.named_files: list[NamedFile] = []

    def section(self, node: YNode | None, obj: schema.Obj, path: str, line: int) -> Section | None:
        """Check ``node`` is a mapping with only known keys and every required key. None: absent or wrong.

        ``line`` is where the mapping's own key is: missing keys are reported there."""
        if node is None:
            return None  # absent: a required section was reported missing by its parent
        if not isinstance(node, YMap):
            if isinstance(node, YScalar) and node.kind == "null" and not obj.required():
                return None  # `login:` with nothing under it means the defaults
            expected = ", ".join(obj.names())
            self.p.add(node, path, f"expected a mapping with keys {expected}; found {found(node)}")
            return None
        values: dict[str, YNode] = {}
        key_lines: dict[str, int] = {}
        allowed = obj.names()
        for key, value in node.items:
            name = key.text
            if name in allowed:
                values[name] = value
                key_lines[name] = key.line
                continue
            hint = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
            message = f"unknown key {name!r}"
            message += f"; did you mean {hint[0]!r}?" if hint else f"; expected one of: {', '.join(allowed)}"
            self.p.add(key, join(path, name), message)
        for name in obj.required():
            if name not in values:
                self.p.add(line, join(path, name), f"required key missing; expected {obj.key(name).description}")
        return Section(node, obj, path, values, line, key_lines)

    def items(self, node: YNode | None, path: str, *, min_items: int = 0, what: str = "values") -> Iterator[
            tuple[int, YNode, str]]:
        """The items of a list with their paths; a non-list is one problem and no items."""
        if node is None or (isinstance(node, YScalar) and node.kind == "null" and min_items == 0):
            return
        if not isinstance(node, YSeq):
            self.p.add(node, path, f"expected a list of {what}; found {found(node)}")
            return
        if len(node.items) < min_items:
            self.p.add(node, path, f"expected at least {min_items} of {what}; found an empty list")
        for i, item in enumerate(node.items):
            yield i, item, f"{path}[{i}]"

    def string(self, node: YNode, path: str, what: str = "a string") -> str | None:
        # The original text, not YAML 1.1's reading of it: `NO` is Norway, `off` is a word.
        if isinstance(node, YScalar) and node.kind != "null":
            if node.text.strip() == "":
                self.p.add(node, path, f"expected {what}; found an empty string")
                return None
            return node.text.strip()
        self.p.add(node, path, f"expected {what}; found {found(node)}")
        return None

    def boolean(self, node: YNode | None, path: str, default: bool) -> bool:
        if node is None:
            return default
        if isinstance(node, YScalar) and node.kind == "bool" and isinstance(node.value, bool):
            return node.value
        self.p.add(node, path, f"expected true or false; found {found(node)}")
        return default

    def integer(self, node: YNode | None, path: str, default: int, minimum: int, why: str = "") -> int:
        if node is None:
            return default
        if not (isinstance(node, YScalar) and node.kind == "int" and isinstance(node.value, int)
                and not isinstance(node.value, bool)):
            self.p.add(node, path, f"expected a whole number of at least {minimum}; found {found(node)}")
            return default
        if node.value < minimum:
            self.p.add(node, path, f"expected at least {minimum}{why}; found {node.text.strip()[:40]}")
            return default
        if node.value > _MAX_INTEGER:
            self.p.add(node, path, f"expected at most {_MAX_INTEGER}; found {node.text.strip()[:40]}")
            return default
        return node.value

    def duration(self, node: YNode | None, path: str, default: timedelta) -> timedelta:
        if node is None:
            return default
        if not (isinstance(node, YScalar) and node.kind == "str"):
            self.p.add(node, path, f"expected a duration like 30s, 15m, 8h or 7d; found {found(node)}")
            return default
        try:
            return parse_duration(node.text)
        except ValueError as exc:
            self.p.add(node, path, str(exc))
            return default

    def choice[E: StrEnum](self, node: YNode | None, path: str, enum: type[E], default: E) -> E:
        if node is None:
            return default
        options = ", ".join(e.value for e in enum)
        if isinstance(node, YScalar) and node.kind != "null":
            try:
                return enum(node.text.strip())
            except ValueError:
                pass
        self.p.add(node, path, f"expected one of {options}; found {found(node)}")
        return default

    def path_value(self, node: YNode | None, path: str, default: str) -> Path:
        text = default if node is None else self.string(node, path, "a file path")
        return self.resolve(text if text is not None else default)

    def resolve(self, text: str) -> Path:
        p = Path(text)
        return p if p.is_absolute() else self.base / p

    def name_file(self, node: YNode, path: str, file: Path, kind: FileKind) -> None:
        """``file`` must be read and checked (by the files layer) before the policy is used."""
        self.named_files.append(NamedFile(file, kind, node.line, path))

    def cidr(self, node: YNode, path: str) -> IPNetwork | None:
        text = self.string(node, path, "an IPv4 or IPv6 network like 10.0.0.0/8 or 2001:db8::/32")
        if text is None:
            return None
        try:
            return ipaddress.ip_network(text, strict=True)
        except ValueError as exc:
            try:
                fixed = ipaddress.ip_network(text, strict=False)
            except ValueError:
                self.p.add(node, path, f"expected an IPv4 or IPv6 network like 10.0.0.0/8 or 2001:db8::/32; "
                                       f"found {text!r} ({exc})")
                return None
            self.p.add(node, path, f"{text!r} has host bits set; expected the network address: did you mean "
                                   f"'{fixed}'?")
            return None

    def host(self, node: YNode, path: str, *, wildcard: bool) -> str | None:
        what = "a host name or IP address without port" + (" (or *.suffix)" if wildcard else "")
        text = self.string(node, path, what)
        if text is None:
            return None
        star = ""
        name = text
        if wildcard and name.startswith("*."):
            star, name = "*.", name[2:]
        normalised = policy_host(name)
        if normalised is None:
            self.p.add(node, path, f"expected {what}; found {text!r}")
            return None
        return star + normalised

    def hostport(self, node: YNode | None, path: str) -> HostPort | None:
        if node is None:
            return None
        text = self.string(node, path, "HOST:PORT or [IPv6]:PORT")
        if text is None:
            return None
        parsed = parse_hostport(text)
        if isinstance(parsed, str):
            self.p.add(node, path, f"expected HOST:PORT or [IPv6]:PORT; found {text!r} ({parsed})")
            return None
        return parsed

    def name_list(self, node: YNode | None, path: str, what: str, pattern: re.Pattern[str] = NAME) -> list[
            tuple[str, YNode, str]]:
        out: list[tuple[str, YNode, str]] = []
        for _i, item, item_path in self.items(node, path, what=what):
            text = self.string(item, item_path, what)
            if text is None:
                continue
            if not pattern.fullmatch(text):
                self.p.add(item, item_path, f"expected {what} ({pattern.pattern}); found {text!r}")
                continue
            out.append((text, item, item_path))
        return out

    def countries(self, node: YNode | None, path: str) -> list[str]:
        out: list[str] = []
        for _i, item, item_path in self.items(node, path, what="two-letter country codes"):
            text = self.string(item, item_path, "a two-letter country code (ISO 3166-1)")
            if text is None:
                continue
            code = text.upper()
            if not _COUNTRY.fullmatch(code):
                self.p.add(item, item_path, f"expected a two-letter country code (ISO 3166-1) like CN; found {text!r}")
                continue
            problem = country_problem(code)
            if problem is not None:
                self.p.add(item, item_path, problem)
                continue
            out.append(code)
        return out

    def moment(self, node: YNode, path: str, *, end_of_day: bool) -> datetime | None:
        """An ISO date-time (or date); without an offset it is in gateway.timezone. A date alone as
        an end means the end of that day."""
        value: object = node.value if isinstance(node, YScalar) else None
        text = node.text.strip() if isinstance(node, YScalar) and node.kind != "null" else None
        parsed: datetime | date | None = None
        if text is not None:
            try:
                parsed = datetime.fromisoformat(text) if ("T" in text or " " in text or ":" in text) else \
                    date.fromisoformat(text)
            except ValueError:
                if isinstance(value, datetime | date):
                    parsed = value  # YAML's own timestamp forms, e.g. `2026-12-01 08:00:00 +8`
        if parsed is None:
            self.p.add(node, path, f"expected an ISO 8601 date-time like 2026-12-01T08:00 or a date like "
                                   f"2026-12-15; found {found(node)}")
            return None
        if not 1970 <= parsed.year <= 9998:
            # Far-off years are typos, and would overflow the window arithmetic downstream.
            self.p.add(node, path, f"expected a year from 1970 to 9998; found {parsed.year}")
            return None
        if not isinstance(parsed, datetime):
            parsed = datetime.combine(parsed, time.max if end_of_day else time.min)
        elif end_of_day and text is not None and _MINUTE_PRECISION.search(text):
            # `until: 2026-12-15T23:59` means through the end of that minute, as an operator reads it.
            parsed = parsed.replace(second=59, microsecond=999_999)
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=self.tz)
        return parsed.astimezone(self.tz)

    def day(self, node: YNode, path: str) -> date | None:
        value: date | None = None
        if isinstance(node, YScalar):
            if isinstance(node.value, date) and not isinstance(node.value, datetime):
                value = node.value
            else:
                try:
                    value = date.fromisoformat(node.text.strip())
                except ValueError:
                    value = None
        if value is None:
            self.p.add(node, path, f"expected a date like 2027-06-30; found {found(node)}")
            return None
        if not 1970 <= value.year <= 9998:
            self.p.add(node, path, f"expected a year from 1970 to 9998; found {value.year}")
            return None
        return value
