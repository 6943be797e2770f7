"""The devices `govgate device` issues and the browsers staff enrol: the device registry (``devices_file``).

# Art. 19 (第十九条): staff functions only from allowed IP ranges or devices.
# Art. 30 (第三十条): bind accounts to terminals; electronic certificates are encouraged.

Two kinds of device, each owned by one account:

- ``certificate``: a client certificate issued by the gateway's device CA (``govgate device issue``); known
  by the SHA-256 of its DER encoding, valid until the certificate's own end (``expires`` is that date);
- ``browser``: an enrolled browser (``{prefix}/enroll``), known by its long-lived device cookie. Only the
  SHA-256 of the cookie's token is kept here; the token itself lives in that browser alone.

States: ``pending`` (enrolled, not yet approved: not a device yet), ``active``, ``revoked``. Only active
devices whose ``expires`` day has not passed identify anything. The file is written only by
``govgate device`` and by the gateway's enrolment page, under a lock, atomically (``govgate.devices_file``);
devices written by hand in policy.yaml keep working beside these. This module never touches the disk or the
clock.

    version: 1
    devices:
      zs-laptop:
        account: zhangsan
        kind: certificate
        state: active
        cert_sha256: 3f2a…                 # 64 hex digits
        serial: "1a2b…"                    # the certificate's serial number, hex
        expires: 2027-12-03
        created: '2026-12-03T10:00:00+08:00'
      zs-browser-4f2a:
        account: zhangsan
        kind: browser
        state: pending
        label: 张三的办公电脑
        token_sha256: 9c1d…
        created: '…'
        approved: '…'                      # approve: the day it became active
        revoked: '…'
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum
from typing import Any

import yaml

from govgate.core.policy.model import Device
from govgate.core.yaml_tree import YamlSyntaxError, YMap, YNode, YScalar, plain_value, read_yaml_tree
from govgate.errors import DeviceError, PolicyError, PolicyProblem

FILE_VERSION = 1
DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # as policy.yaml's device ids
HEADER = ("# GovGate devices: written by `govgate device …` and the gateway's enrolment page only; do not edit by "
          "hand.\n# Enrolled browsers are kept by the SHA-256 of their token, never the token itself.\n")


class DeviceKind(StrEnum):
    CERTIFICATE = "certificate"
    BROWSER = "browser"


class DeviceState(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class RegisteredDevice:
    id: str
    account: str
    kind: DeviceKind
    state: DeviceState
    created: datetime
    cert_sha256: bytes | None = None  # certificate
    serial: str | None = None  # certificate, hex
    token_sha256: bytes | None = None  # browser
    label: str | None = None  # browser: the name given at enrolment
    expires: date | None = None  # last day it works (inclusive); a browser's from approval on
    approved: datetime | None = None
    revoked: datetime | None = None

    def allowlisted(self, today: date) -> bool:
        return self.state is DeviceState.ACTIVE and (self.expires is None or today <= self.expires)

    def as_policy_device(self) -> Device:
        """The form the decision's device index takes (policy.yaml's ``devices`` entries have it too)."""
        return Device(id=self.id, account=self.account, cert_sha256=self.cert_sha256, token=None,
                      expires=self.expires, token_sha256=self.token_sha256)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True, slots=True)
class DeviceRegistry:
    devices: tuple[RegisteredDevice, ...] = ()

    def __iter__(self) -> Iterator[RegisteredDevice]:
        return iter(self.devices)

    def __len__(self) -> int:
        return len(self.devices)

    def get(self, device_id: str) -> RegisteredDevice | None:
        return next((d for d in self.devices if d.id == device_id), None)

    def active(self) -> tuple[Device, ...]:
        """Every device that may identify a request (``active``; expiry is judged per request, by day)."""
        return tuple(d.as_policy_device() for d in self.devices if d.state is DeviceState.ACTIVE)

    # -- changes (each returns a new registry; DeviceError when it cannot be done) -----------------------------
    def with_new(self, device: RegisteredDevice, taken: frozenset[str] = frozenset()) -> DeviceRegistry:
        """``device`` added; its id must be unused here and in ``taken`` (the ids policy.yaml lists)."""
        problem = device_id_problem(device.id)
        if problem:
            raise DeviceError(problem)
        if self.get(device.id) is not None or device.id in taken:
            raise DeviceError(f"device {device.id!r} exists already; choose another id")
        return DeviceRegistry((*self.devices, device))

    def revoked(self, device_id: str, now: datetime) -> DeviceRegistry:
        device = self._existing(device_id)
        if device.state is DeviceState.REVOKED:
            raise DeviceError(f"device {device_id!r} is revoked already")
        return self._with(replace(device, state=DeviceState.REVOKED, revoked=now))

    def approved(self, device_id: str, now: datetime, expires: date) -> DeviceRegistry:
        device = self._existing(device_id)
        if device.kind is not DeviceKind.BROWSER or device.state is not DeviceState.PENDING:
            raise DeviceError(f"device {device_id!r} is not an enrolled browser waiting for approval "
                              f"(it is a {device.kind.value} device, {device.state.value})")
        return self._with(replace(device, state=DeviceState.ACTIVE, approved=now, expires=expires))

    def _existing(self, device_id: str) -> RegisteredDevice:
        device = self.get(device_id)
        if device is None:
            raise DeviceError(f"unknown device {device_id!r} (not issued or enrolled; `govgate device list` shows "
                              "them all)")
        return device

    def _with(self, device: RegisteredDevice) -> DeviceRegistry:
        return DeviceRegistry(tuple(device if d.id == device.id else d for d in self.devices))


def device_id_problem(device_id: str) -> str | None:
    if not DEVICE_ID.fullmatch(device_id):
        return (f"invalid device id {device_id!r}: 1 to 64 letters, digits and . _ -, starting with a letter or "
                "digit")
    return None


# -- the file ----------------------------------------------------------------------------------------------------

def dump_registry(registry: DeviceRegistry) -> str:
    """The file's text; ``parse_registry`` reads it back to an equal value."""
    document = {"version": FILE_VERSION, "devices": {d.id: _document(d) for d in registry}}
    return HEADER + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False,
                                   width=1000)


def _document(d: RegisteredDevice) -> dict[str, Any]:
    doc: dict[str, Any] = {"account": d.account, "kind": d.kind.value, "state": d.state.value}
    if d.cert_sha256 is not None:
        doc["cert_sha256"] = d.cert_sha256.hex()
    if d.serial is not None:
        doc["serial"] = d.serial
    if d.token_sha256 is not None:
        doc["token_sha256"] = d.token_sha256.hex()
    if d.label is not None:
        doc["label"] = d.label
    if d.expires is not None:
        doc["expires"] = d.expires.isoformat()
    doc["created"] = d.created.isoformat()
    for key in ("approved", "revoked"):
        moment = getattr(d, key)
        if moment is not None:
            doc[key] = moment.isoformat()
    return doc


_KEYS = frozenset({"account", "kind", "state", "cert_sha256", "serial", "token_sha256", "label", "expires",
                   "created", "approved", "revoked"})


def parse_registry(text: str, source: str) -> DeviceRegistry:
    """Parse the file; ``PolicyError`` lists every problem (``devices.yaml:7: devices.x.state: …``)."""
    problems: list[PolicyProblem] = []

    def problem(node: YNode, path: str, message: str) -> None:
        problems.append(PolicyProblem(source, node.line, path, message))

    try:
        root, found = read_yaml_tree(text, source, document="a devices file")
    except YamlSyntaxError as exc:
        raise PolicyError([PolicyProblem(source, exc.line, "", f"not valid YAML: {exc.reason}")]) from None
    problems.extend(found)
    devices: list[RegisteredDevice] = []
    if isinstance(root, YMap):
        for key, value in root.items:
            if key.text == "version":
                if plain_value(value) != FILE_VERSION:
                    problem(value, "version", "expected version: 1")
            elif key.text == "devices":
                if isinstance(value, YScalar) and value.value is None:
                    continue
                if not isinstance(value, YMap):
                    problem(value, "devices", "expected a mapping of device ids")
                    continue
                for id_node, entry in value.items:
                    device = _parse_device(id_node.text, entry, f"devices.{id_node.text}", problem)
                    if device is not None:
                        devices.append(device)
            else:
                problem(key, key.text, "unknown key (expected version, devices)")
    elif root is not None:
        problem(root, "", "expected a mapping with version and devices")
    if problems:
        raise PolicyError(problems)
    return DeviceRegistry(tuple(devices))


def _parse_device(device_id: str, node: YNode, path: str, problem: Any) -> RegisteredDevice | None:
    if device_id_problem(device_id):
        problem(node, path, device_id_problem(device_id))
        return None
    if not isinstance(node, YMap):
        problem(node, path, "expected a mapping")
        return None
    values: dict[str, Any] = {}
    bad = False
    for key, value in node.items:
        if key.text not in _KEYS:
            problem(key, f"{path}.{key.text}", f"unknown key (expected one of {', '.join(sorted(_KEYS))})")
            bad = True
            continue
        values[key.text] = plain_value(value)
    try:
        kind = DeviceKind(str(values.get("kind")))
        state = DeviceState(str(values.get("state")))
        created = _moment(values.get("created"))
        if not isinstance(values.get("account"), str) or created is None:
            raise ValueError("account and created are required")
        cert = bytes.fromhex(values["cert_sha256"]) if values.get("cert_sha256") else None
        token = bytes.fromhex(values["token_sha256"]) if values.get("token_sha256") else None
        if (kind is DeviceKind.CERTIFICATE and (cert is None or len(cert) != 32)) or (
                kind is DeviceKind.BROWSER and (token is None or len(token) != 32)):
            raise ValueError("a certificate needs cert_sha256, a browser token_sha256 (64 hex digits)")
        expires = values.get("expires")
        expires = date.fromisoformat(expires) if isinstance(expires, str) else expires
        if expires is not None and not isinstance(expires, date):
            raise ValueError("expires must be a date")
    except (ValueError, TypeError, KeyError) as exc:
        problem(node, path, f"not a valid device entry: {exc}")
        return None
    if bad:
        return None
    return RegisteredDevice(id=device_id, account=values["account"], kind=kind, state=state, created=created,
                            cert_sha256=cert, serial=values.get("serial"), token_sha256=token,
                            label=values.get("label"), expires=expires, approved=_moment(values.get("approved")),
                            revoked=_moment(values.get("revoked")))


def _moment(value: object) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    return value if isinstance(value, datetime) and value.tzinfo is not None else None
