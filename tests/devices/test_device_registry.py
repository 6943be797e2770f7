"""The device registry as values (``govgate.core.device_registry``): its file text, its changes, and what
counts as a device (Art. 19, Art. 30)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from govgate.core.device_registry import (
    DeviceKind,
    DeviceRegistry,
    DeviceState,
    RegisteredDevice,
    dump_registry,
    parse_registry,
    token_digest,
)
from govgate.errors import DeviceError, PolicyError
from tests.policies import TZ

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=TZ)


def cert_device(device_id: str = "zs-laptop", state: DeviceState = DeviceState.ACTIVE,
                expires: date | None = date(2027, 12, 3)) -> RegisteredDevice:
    return RegisteredDevice(id=device_id, account="zhangsan", kind=DeviceKind.CERTIFICATE, state=state, created=NOW,
                            cert_sha256=bytes(range(32)), serial="1a2b", expires=expires)


def browser(device_id: str = "zhangsan-browser-0a0b0c", state: DeviceState = DeviceState.PENDING) -> RegisteredDevice:
    return RegisteredDevice(id=device_id, account="zhangsan", kind=DeviceKind.BROWSER, state=state, created=NOW,
                            token_sha256=token_digest("x" * 43), label="张三的办公电脑")


def test_the_file_reads_back_to_the_same_registry() -> None:
    registry = DeviceRegistry((cert_device(), browser())).revoked("zs-laptop", NOW + timedelta(hours=1))
    text = dump_registry(registry)
    assert text.startswith("# GovGate devices")
    assert parse_registry(text, "devices.yaml") == registry


@given(st.lists(st.tuples(st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True),
                          st.sampled_from(DeviceKind), st.sampled_from(DeviceState),
                          st.text(min_size=1, max_size=30).filter(str.isprintable),
                          st.none() | st.dates(date(1970, 1, 1), date(9998, 12, 31))),
                unique_by=lambda t: t[0], max_size=8))
def test_any_registry_reads_back_to_itself(
        entries: list[tuple[str, DeviceKind, DeviceState, str, date | None]]) -> None:
    devices = tuple(
        RegisteredDevice(id=i, account=label.strip() or "a", kind=kind, state=state, created=NOW,
                         cert_sha256=bytes(32) if kind is DeviceKind.CERTIFICATE else None,
                         token_sha256=bytes(32) if kind is DeviceKind.BROWSER else None,
                         label=label if kind is DeviceKind.BROWSER else None, expires=expires)
        for i, kind, state, label, expires in entries)
    registry = DeviceRegistry(devices)
    assert parse_registry(dump_registry(registry), "devices.yaml") == registry


def test_only_active_devices_identify_anything_and_only_until_their_last_day() -> None:
    registry = DeviceRegistry((cert_device(), cert_device("zs-old", DeviceState.REVOKED), browser()))
    assert [d.id for d in registry.active()] == ["zs-laptop"]
    device = cert_device()
    assert device.allowlisted(date(2027, 12, 3))
    assert not device.allowlisted(date(2027, 12, 4))
    assert not browser().allowlisted(date(2026, 12, 3))  # pending is not a device yet


def test_an_enrolled_browser_is_kept_by_the_hash_of_its_token_only() -> None:
    token = "T" * 43
    device = RegisteredDevice(id="b1", account="zhangsan", kind=DeviceKind.BROWSER, state=DeviceState.PENDING,
                              created=NOW, token_sha256=token_digest(token))
    assert token not in dump_registry(DeviceRegistry((device,)))
    assert device.as_policy_device().token is None
    assert device.as_policy_device().token_sha256 == token_digest(token)


def test_ids_are_unique_across_the_registry_and_policy_yaml() -> None:
    registry = DeviceRegistry((cert_device(),))
    with pytest.raises(DeviceError, match="exists already"):
        registry.with_new(cert_device())
    with pytest.raises(DeviceError, match="exists already"):
        registry.with_new(cert_device("ls-desktop"), frozenset({"ls-desktop"}))
    with pytest.raises(DeviceError, match="invalid device id"):
        registry.with_new(cert_device("-starts-with-a-dash"))
    assert len(registry.with_new(cert_device("zs-phone"))) == 2


def test_approval_applies_to_a_pending_browser_only() -> None:
    registry = DeviceRegistry((cert_device(), browser()))
    approved = registry.approved("zhangsan-browser-0a0b0c", NOW, date(2027, 3, 3))
    device = approved.get("zhangsan-browser-0a0b0c")
    assert device is not None
    assert (device.state, device.expires, device.approved) == (DeviceState.ACTIVE, date(2027, 3, 3), NOW)
    for registry_, device_id in ((approved, "zhangsan-browser-0a0b0c"), (registry, "zs-laptop")):
        with pytest.raises(DeviceError, match="not an enrolled browser waiting"):
            registry_.approved(device_id, NOW, date(2027, 3, 3))
    with pytest.raises(DeviceError, match="unknown device"):
        registry.approved("nothing", NOW, date(2027, 3, 3))


def test_revocation_is_once_and_for_good() -> None:
    registry = DeviceRegistry((cert_device(),)).revoked("zs-laptop", NOW)
    with pytest.raises(DeviceError, match="revoked already"):
        registry.revoked("zs-laptop", NOW)
    assert registry.active() == ()


@pytest.mark.parametrize(("text", "where"), [
    ("version: 2\ndevices: {}\n", "devices.yaml:1: version: expected version: 1"),
    ("version: 1\ndevices:\n  zs-laptop:\n    account: zhangsan\n    kind: certificate\n    state: lost\n"
     "    cert_sha256: " + "ab" * 32 + "\n    created: '2026-12-03T10:00:00+08:00'\n",
     "devices.yaml:4: devices.zs-laptop: not a valid device entry"),
    ("version: 1\ndevices:\n  zs-laptop:\n    account: zhangsan\n    kind: certificate\n    state: active\n"
     "    created: '2026-12-03T10:00:00+08:00'\n",
     "devices.yaml:4: devices.zs-laptop: not a valid device entry: a certificate needs cert_sha256"),
    ("version: 1\ndevices:\n  zs-laptop:\n    owner: zhangsan\n",
     "devices.yaml:4: devices.zs-laptop.owner: unknown key"),
    ("version: 1\ndevices: [a, b]\n", "devices.yaml:2: devices: expected a mapping of device ids"),
    ("version: 1\ndevices:\n  zs-laptop:\n    label: 'unclosed\n    state: active\n", "devices.yaml:4: not valid YAML"),
    ("version: 1\nextra: 1\n", "devices.yaml:2: extra: unknown key"),
])
def test_a_broken_file_is_refused_with_the_line_and_the_key(text: str, where: str) -> None:
    with pytest.raises(PolicyError) as refused:
        parse_registry(text, "devices.yaml")
    assert where in str(refused.value)


def test_an_empty_file_is_an_empty_registry() -> None:
    assert len(parse_registry("", "devices.yaml")) == 0
    assert len(parse_registry("version: 1\ndevices:\n", "devices.yaml")) == 0
