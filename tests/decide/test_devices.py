"""The device allowlist: certificate fingerprints, enrolment tokens, expiry."""

from __future__ import annotations

import hashlib
from datetime import date

from govgate.core.devices import (
    DeviceIndex,
    cert_fingerprint,
    device_for_cert,
    device_for_cert_sha256,
    device_for_token,
)
from tests.policies import at, device, policy

DER = b"0\x82\x01\x0a fake DER bytes of a client certificate"
TOKEN = "f3b1c0de-enrolment-token"


def devices() -> DeviceIndex:
    return DeviceIndex(policy(devices=[
        device("zs-laptop", "zhangsan", cert_sha256=hashlib.sha256(DER).digest()),
        device("ls-browser", "lisi", token=TOKEN, expires=date(2026, 12, 31)),
        device("old-pc", "lisi", cert_sha256=hashlib.sha256(b"old").digest(), expires=date(2026, 1, 1)),
    ]).devices)


def test_fingerprint_is_the_sha256_of_the_der_certificate() -> None:
    assert cert_fingerprint(DER) == hashlib.sha256(DER).digest()
    assert len(cert_fingerprint(DER)) == 32


def test_listed_certificate_identifies_its_device() -> None:
    found = device_for_cert(devices(), DER, at("2026-12-05 10:00"))
    assert found is not None
    assert found.id == "zs-laptop"
    assert device_for_cert_sha256(devices(), hashlib.sha256(DER).digest(), at("2026-12-05 10:00")) == found


def test_unlisted_certificate_identifies_nothing() -> None:
    assert device_for_cert(devices(), b"another certificate", at("2026-12-05 10:00")) is None


def test_enrolment_token_identifies_its_device() -> None:
    found = device_for_token(devices(), TOKEN, at("2026-12-05 10:00"))
    assert found is not None
    assert found.id == "ls-browser"


def test_wrong_or_empty_token_identifies_nothing() -> None:
    now = at("2026-12-05 10:00")
    assert device_for_token(devices(), TOKEN + "x", now) is None
    assert device_for_token(devices(), TOKEN[:-1], now) is None
    assert device_for_token(devices(), "", now) is None


def test_device_works_through_its_expiry_day_and_never_after() -> None:
    assert device_for_token(devices(), TOKEN, at("2026-12-31 23:59")) is not None
    assert device_for_token(devices(), TOKEN, at("2027-01-01 00:00")) is None
    assert device_for_cert(devices(), b"old", at("2026-06-01 00:00")) is None


def test_lookups_accept_a_policy_as_well_as_an_index() -> None:
    p = policy(devices=[device("zs-laptop", "zhangsan", cert_sha256=hashlib.sha256(DER).digest())])
    found = device_for_cert(p, DER, at("2026-12-05 10:00"))
    assert found is not None
    assert found.account == "zhangsan"


def test_index_knows_which_devices_an_account_owns() -> None:
    index = devices()
    assert index.owned_by("lisi") == frozenset({"ls-browser", "old-pc"})
    assert index.owned_by("nobody") == frozenset()
    assert index.by_id("zs-laptop") is not None
    assert len(index) == 3


def test_an_enrolled_browser_is_recognised_only_by_a_signed_cookie_and_a_written_token_only_unsigned() -> None:
    from govgate.core.device_registry import DeviceKind, DeviceState, RegisteredDevice, token_digest

    enrolled_token = "E" * 43
    browser = RegisteredDevice(id="zs-browser", account="zhangsan", kind=DeviceKind.BROWSER,
                               state=DeviceState.ACTIVE, created=at("2026-12-01 09:00"),
                               token_sha256=token_digest(enrolled_token))
    index = DeviceIndex((*policy(devices=[device("ls-browser", "lisi", token=TOKEN)]).devices,
                         browser.as_policy_device()))
    now = at("2026-12-05 10:00")
    found = device_for_token(index, enrolled_token, now, signed=True)
    assert found is not None
    assert found.id == "zs-browser"
    assert device_for_token(index, enrolled_token, now) is None
    assert device_for_token(index, TOKEN, now, signed=True) is None
    assert device_for_token(index, TOKEN, now) is not None
