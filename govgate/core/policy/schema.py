"""The shape of policy.yaml: one table of every key, read by the validator and turned into JSON Schema.

``POLICY`` lists every section and key with its type, default and meaning. ``validate.py`` takes
the set of allowed (and required) keys of each mapping from this table, and only reads keys the
table names, so the validator and ``govgate schema`` cannot drift apart. The meaning of a value
(a CIDR's host bits, a grant's window, a device name's existence) is checked in ``validate.py``;
the schema carries what JSON Schema can say (types, enums, patterns) for editors and CI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

type Json = Mapping[str, object]
type Value = Json | Obj | ListOf | MapOf

SCHEMA_ID = "https://govgate.example/schema/policy-v1.json"

DURATION_PATTERN = r"^(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?$"
COUNTRY_PATTERN = r"^[A-Za-z]{2}$"
NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
DAILY_PATTERN = r"^\d{2}:\d{2}-\d{2}:\d{2}$"
HOSTPORT_PATTERN = r"^(?:\[[0-9A-Fa-f:.]+\]|[^\s:\[\]/]+):\d{1,5}$"


@dataclass(frozen=True, slots=True)
class Key:
    """One key of a mapping: its value's shape, meaning, default (as written in YAML) and article."""

    name: str
    value: Value
    description: str
    required: bool = False
    default: str | None = None
    article: str | None = None


@dataclass(frozen=True, slots=True)
class Obj:
    """A mapping with a fixed set of keys; any other key is an error."""

    keys: tuple[Key, ...]
    description: str = ""
    extra: Json = field(default_factory=dict)  # further JSON Schema keywords (conditional requirements)

    def names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.keys)

    def required(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.keys if k.required)

    def key(self, name: str) -> Key:
        for k in self.keys:
            if k.name == name:
                return k
        raise KeyError(name)

    def child(self, name: str) -> Obj:
        """The mapping under ``name`` (or the mapping each item of the list under ``name`` is)."""
        value = self.key(name).value
        if isinstance(value, ListOf):
            value = value.item
        if not isinstance(value, Obj):
            raise TypeError(f"{name} is not a mapping")
        return value


@dataclass(frozen=True, slots=True)
class ListOf:
    item: Json | Obj
    min_items: int = 0
    unique: bool = False


@dataclass(frozen=True, slots=True)
class MapOf:
    """A mapping whose keys are names chosen by the operator (``networks``)."""

    value: Json | ListOf
    key_pattern: str = NAME_PATTERN
    extra: Json = field(default_factory=dict)


def _s(description: str = "", **extra: object) -> Json:
    return {"type": "string", **({"description": description} if description else {}), **extra}


STRING: Json = {"type": "string", "minLength": 1}
BOOL: Json = {"type": "boolean"}
DURATION: Json = {"type": "string", "pattern": DURATION_PATTERN, "description": "a duration: 30s, 15m, 8h, 7d or 1h30m"}
CIDR: Json = {"type": "string", "description": "an IPv4 or IPv6 network, e.g. 10.0.0.0/8 or 2001:db8::/32"}
HOST: Json = {"type": "string", "description": "a host name (IDN allowed) or IP address, without port"}
HOST_OR_WILDCARD: Json = {"type": "string", "description": "a host name, or *.suffix for every name under it"}
HOSTPORT: Json = {"type": "string", "pattern": HOSTPORT_PATTERN, "description": "HOST:PORT or [IPv6]:PORT"}
COUNTRY: Json = {"type": "string", "pattern": COUNTRY_PATTERN, "description": "ISO 3166-1 alpha-2 country code"}
# A YAML 1.1 reader (PyYAML's ``yaml.safe_load``, which CI scripts and checkers often use) turns an unquoted
# ``2026-12-15`` into a date and ``2026-12-01 08:00:00+08:00`` into a datetime: values of no JSON type at all,
# which ``"type": "string"`` refuses. GovGate reads both forms alike, so the schema accepts both: the string
# (what an editor reading YAML 1.2 sees) or such a reader's timestamp — anything that is none of the JSON
# types. Numbers, booleans, lists and mappings are still refused.
YAML_TIMESTAMP: Json = {"not": {"type": ["string", "number", "boolean", "null", "array", "object"]}}
DATE_TIME: Json = {
    "anyOf": [{"type": "string", "pattern": r"^\d{4}-\d{1,2}-\d{1,2}(?:[Tt ].+)?$"}, YAML_TIMESTAMP],
    "description": "ISO 8601 date-time (or date); without an offset it is in gateway.timezone",
}
DATE: Json = {
    "anyOf": [{"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"}, YAML_TIMESTAMP],
    "description": "a date, YYYY-MM-DD",
}
PATH: Json = {"type": "string", "minLength": 1, "description": "a file path, relative to the policy file's folder"}


TLS = Obj(
    (
        Key("cert", PATH, "one PEM file holding the private key and the certificate chain, in any order",
            required=True, article="Art. 29"),
        Key("client_ca", PATH, "PEM certificate(s) of the device CA that client certificates must chain to",
            article="Art. 30"),
        Key("request_client_cert", BOOL, "ask browsers for a client certificate (device identity)",
            default="true", article="Art. 30"),
    ),
    "TLS termination (Art. 29: access must use secure connections)",
)

GATEWAY = Obj(
    (
        Key("listen", HOSTPORT, "address the gateway listens on, HOST:PORT", required=True),
        Key("upstream", _s("absolute http(s) URL of the portal, without path", pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://"),
            "the portal behind the gateway", required=True),
        Key("public_hosts", {"type": "array", "items": HOST, "minItems": 1},
            "names users reach the portal by: its own links stay untouched", required=True, article="Art. 15"),
        Key("tls", TLS, "TLS certificate; absent only with insecure: true", article="Art. 29"),
        Key("insecure", BOOL, "plain HTTP, for local trials only; said loudly at start", default="false",
            article="Art. 29"),
        Key("trusted_proxies", {"type": "array", "items": CIDR}, "CIDRs whose X-Forwarded-For is believed",
            default="[]", article="Art. 19"),
        Key("timezone", _s("IANA time zone name"), "for grant windows and daily hours", default="Asia/Shanghai"),
        Key("prefix", _s("path prefix of the gate's own pages", pattern=r"^/[^?#]*[^/?#]$"),
            "the gate's own pages live under this path", default="/__govgate"),
        Key("key_file", PATH, "MACs CSRF tokens and leave links, encrypts TOTP secrets, MACs the audit log",
            default="secrets/gateway.key"),
        Key("upstream_timeout", DURATION, "no response head from the portal within this: the gate's 504 page",
            default="60s"),
        Key("drain_timeout", DURATION, "on SIGTERM, how long requests in flight may finish", default="30s"),
        Key("idle_timeout", DURATION, "a client connection the client leaves quiet for this long is closed (idle "
            "keep-alive, a request head or TLS handshake that never ends, a request body that stops arriving, an "
            "answer the client stops reading); a request waiting for the portal is not cut", default="60s"),
        Key("max_requests_per_connection", {"type": "integer", "minimum": 1},
            "then a client connection is closed gracefully (Connection: close, GOAWAY)", default="1000"),
        Key("redirect_listen", HOSTPORT, "plain-HTTP address (port 80) answering every request with a 308 to "
            "HTTPS; absent: none", article="Art. 29"),
        Key("proxy_protocol", BOOL, "connections from trusted_proxies start with a PROXY protocol v1/v2 header "
            "(TCP load balancers), which gives the client address", default="false", article="Art. 19"),
    ),
    "how the gateway listens and what it protects",
)

STATE = Obj(
    (
        Key("redis", _s("redis://, rediss://, unix:// or redis+sentinel:// URL"),
            "shared state store; absent: in-process memory, one instance only"),
        Key("timeout", DURATION, "time limit of each Redis call", default="500 ms"),
    ),
    "where sessions, lockouts and one-time codes are kept",
)

GEOIP = Obj(
    (
        Key("database", PATH, "MaxMind DB (.mmdb) with country data", required=True, article="Art. 19"),
        Key("home_countries", {"type": "array", "items": COUNTRY, "minItems": 1},
            "countries that are not overseas (HK, MO, TW are the operator's call)", default="[CN]",
            article="Art. 19"),
        Key("unknown", {"enum": ["home", "overseas"]}, "addresses the database does not know",
            default="overseas", article="Art. 19"),
    ),
    "country of client addresses (Art. 19: overseas access only by whitelist)",
)

DEVICE = Obj(
    (
        Key("id", STRING, "device id, unique", required=True),
        Key("account", STRING, "the account this device belongs to", required=True, article="Art. 30"),
        Key("cert_sha256", _s("SHA-256 of the DER client certificate: 64 hex digits, colons and case ignored"),
            "client certificate fingerprint (device identity)", article="Art. 30"),
        Key("token", {"type": "string", "pattern": r"^[A-Za-z0-9_-]{22,}$"},
            "enrolment token carried by the device cookie: at least 128 bits of randomness, as 22 or more "
            "characters of A-Z a-z 0-9 _ -", article="Art. 30"),
        Key("expires", DATE, "last day the device is allowlisted", article="Art. 25"),
    ),
    "an allowlisted device; needs cert_sha256 or token (or both)",
)

RULE = Obj(
    (
        Key("name", STRING, "rule name, unique; shown by explain and in the audit log", required=True),
        Key("paths", {"type": "array", "items": _s("glob: * one segment, ** any", pattern="^/"), "minItems": 1},
            "path globs the rule matches", required=True),
        Key("hosts", {"type": "array", "items": HOST_OR_WILDCARD}, "hosts the rule matches; absent: any host"),
        Key("methods", {"type": "array", "items": STRING}, "HTTP methods the rule matches; absent: any method"),
        Key("allow", {"enum": ["public", "staff", "deny"]}, "public forwards, deny refuses, staff runs the checks",
            required=True, article="Art. 19"),
        Key("networks", {"oneOf": [{"const": "any"}, {"type": "array", "items": STRING, "minItems": 1}]},
            "staff only, and required there: names of networks staff may come from, or `any` for every address",
            article="Art. 19"),
        Key("devices", {"enum": ["allowlisted", "none"]},
            "staff only: whether an allowlisted device also passes the network check", default="allowlisted",
            article="Art. 19"),
        Key("groups", {"type": "array", "items": STRING}, "staff only: account groups admitted; absent: any"),
        Key("bind_devices", BOOL, "staff only: the account must be on one of its own devices", default="false",
            article="Art. 30"),
    ),
    "one access rule; the first rule whose paths (and hosts, methods) match decides",
    # Art. 19: a staff rule names its networks, so a policy cut off after `allow: staff` is invalid.
    extra={"if": {"properties": {"allow": {"const": "staff"}}, "required": ["allow"]},
           "then": {"required": ["networks"]}},
)

GRANT = Obj(
    (
        Key("account", STRING, "account admitted from overseas (account and/or devices)", article="Art. 19"),
        Key("devices", {"type": "array", "items": STRING, "minItems": 1}, "device ids admitted from overseas",
            article="Art. 19"),
        Key("countries", {"type": "array", "items": COUNTRY}, "countries the grant applies to; absent: any"),
        Key("from", DATE_TIME, "start of the grant", required=True, article="Art. 19"),
        Key("until", DATE_TIME, "end of the grant, inclusive (a date alone: the end of that day)", required=True,
            article="Art. 19"),
        Key("daily", _s("HH:MM-HH:MM; may cross midnight", pattern=DAILY_PATTERN), "daily hours within the window",
            article="Art. 19"),
        Key("reason", STRING, "why this access is needed", required=True, article="Art. 19"),
    ),
    "an overseas grant: a whitelist entry for set times, devices or accounts (Art. 19)",
)

OVERSEAS = Obj(
    (Key("grants", ListOf(GRANT), "overseas grants", default="[]", article="Art. 19"),),
    "overseas access (Art. 19); applies to addresses outside every listed network",
)

LOGIN = Obj(
    (
        Key("max_failures", {"type": "integer", "minimum": 1}, "failures per account within failure_window",
            default="5", article="Art. 30"),
        Key("failure_window", DURATION, "window in which failures are counted", default="15m", article="Art. 30"),
        Key("lockout", DURATION, "how long an account or address stays locked", default="30m", article="Art. 30"),
        Key("ip_max_failures", {"type": "integer", "minimum": 1}, "failures per source address, any accounts",
            default="20", article="Art. 30"),
    ),
    "login-failure limits (Art. 30)",
)

SESSION = Obj(
    (
        Key("idle_timeout", DURATION, "session ends after this long without a request", default="15m",
            article="Art. 30"),
        Key("absolute_timeout", DURATION, "session ends this long after login, whatever happens", default="8h",
            article="Art. 30"),
    ),
    "session timeouts (Art. 30: log out on timeout)",
)

OUTBOUND = Obj(
    (
        Key("government_suffixes", {"type": "array", "items": HOST}, "government domain suffixes (whole labels)",
            default="[gov.cn, 政务]", article="Art. 15"),
        Key("allow_hosts", {"type": "array", "items": HOST_OR_WILDCARD}, "other hosts linked without warning",
            default="[]", article="Art. 15"),
        Key("redirects", {"enum": ["warn", "allow"]}, "upstream redirects to non-government hosts",
            default="warn", article="Art. 15"),
    ),
    "warning before leaving for a non-government site (Art. 15)",
)

AUDIT = Obj(
    (
        Key("dir", PATH, "folder of the audit log", default="audit/", article="Art. 20"),
        Key("retention_days", {"type": "integer", "minimum": 365}, "days kept at least; below 365 is refused",
            default="365", article="Art. 20"),
        Key("algorithm", {"enum": ["hmac-sha256", "hmac-sm3"]}, "MAC of the chain (hmac-sm3: 国密, Art. 17)",
            default="hmac-sha256", article="Art. 20"),
        Key("on_failure", {"enum": ["deny", "allow"]}, "staff paths while records cannot be written",
            default="deny", article="Art. 20"),
        Key("prune", BOOL, "delete files older than retention_days", default="false", article="Art. 20"),
        Key("syslog", _s("udp://host:port or tcp://host:port", pattern=r"^(?:udp|tcp)://"),
            "mirror each record to a SIEM (RFC 5424)", article="Art. 20"),
    ),
    "the tamper-evident audit log (Art. 20)",
)

METRICS = Obj(
    (Key("listen", HOSTPORT, "Prometheus text format at /metrics; absent: no metrics endpoint"),),
    "metrics endpoint",
)

POLICY = Obj(
    (
        Key("version", {"const": 1}, "schema version; must be 1", required=True),
        Key("gateway", GATEWAY, "how the gateway listens and what it protects", required=True),
        Key("state", STATE, "state store"),
        Key("geoip", GEOIP, "country lookup", required=True, article="Art. 19"),
        Key("networks", MapOf(ListOf(CIDR, min_items=1)), "named CIDR groups, IPv4 and IPv6", default="{}",
            article="Art. 19"),
        Key("groups", {"type": "array", "items": {"type": "string", "pattern": NAME_PATTERN}, "uniqueItems": True},
            "declared account groups; if present, rules may only name these"),
        Key("accounts_file", PATH, "accounts written by `govgate account`", default="accounts.yaml",
            article="Art. 30"),
        Key("devices_file", PATH, "devices issued by `govgate device` and browsers enrolled at {prefix}/enroll",
            default="devices.yaml", article="Art. 19"),
        Key("devices", ListOf(DEVICE), "the device allowlist written by hand (issued and enrolled devices live "
            "in devices_file)", default="[]", article="Art. 19"),
        Key("access", ListOf(RULE, min_items=1), "access rules; first match wins, unmatched requests are denied",
            required=True, article="Art. 19"),
        Key("overseas", OVERSEAS, "overseas grants", article="Art. 19"),
        Key("login", LOGIN, "login-failure limits", article="Art. 30"),
        Key("session", SESSION, "session timeouts", article="Art. 30"),
        Key("outbound", OUTBOUND, "outbound link warnings", article="Art. 15"),
        Key("audit", AUDIT, "audit log", article="Art. 20"),
        Key("metrics", METRICS, "metrics endpoint"),
    ),
    "GovGate policy (schema version 1): access rules for a government staff portal "
    "under 《互联网政务应用安全管理规定》",
)


def _describe(key: Key) -> str:
    text = key.description
    if key.default is not None:
        text += f" (default: {key.default})"
    if key.article:
        text += f" [{key.article}]"
    return text


def _value_schema(value: Value) -> dict[str, object]:
    if isinstance(value, Obj):
        return _object_schema(value)
    if isinstance(value, ListOf):
        out: dict[str, object] = {"type": "array", "items": _value_schema(value.item)}
        if value.min_items:
            out["minItems"] = value.min_items
        if value.unique:
            out["uniqueItems"] = True
        return out
    if isinstance(value, MapOf):
        return {
            "type": "object",
            "propertyNames": {"pattern": value.key_pattern},
            "additionalProperties": _value_schema(value.value),
            **value.extra,
        }
    return dict(value)


def _object_schema(obj: Obj) -> dict[str, object]:
    properties: dict[str, object] = {}
    for key in obj.keys:
        prop = _value_schema(key.value)
        prop["description"] = _describe(key)
        properties[key.name] = prop
    out: dict[str, object] = {"type": "object"}
    if obj.description:
        out["description"] = obj.description
    out["properties"] = properties
    if obj.required():
        out["required"] = list(obj.required())
    out["additionalProperties"] = False
    out.update(obj.extra)
    return out


def policy_json_schema() -> dict[str, object]:
    """JSON Schema (draft 2020-12) of policy.yaml, with descriptions, defaults and articles."""
    schema: dict[str, object] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "GovGate policy.yaml",
    }
    schema.update(_object_schema(POLICY))
    return schema
