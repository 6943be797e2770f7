"""The exported public key checks the whole log, and nothing else (Art. 20): Ed25519 signatures on the daily seals
and the head anchor vouch, through the hash chain, for every record; the key can neither write records that verify
nor sign or decrypt anything of the gateway's."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from govgate.audit.log_dir import AuditDir
from govgate.audit.verify import verify_dir, walk_dir
from govgate.core import totp
from govgate.core.audit_chain import event_record
from govgate.core.audit_keys import AuditSigner, AuditVerifyKey, export_document, parse_document, verify_key_of
from govgate.core.keys import GatewayKeys, Purpose
from govgate.core.leave_link import leave_url, verify_leave
from govgate.core.policy.model import AuditAlgorithm
from govgate.errors import AccountError, AuditChainBroken, KeyFileError

from .conftest import START, TZ, access_event, write_days

DAY1, DAY2, DAY3 = "audit-2026-11-23.jsonl", "audit-2026-11-24.jsonl", "audit-2026-11-25.jsonl"
BEFORE_SIGNATURES = Path(__file__).resolve().parents[1] / "data" / "audit-before-signatures"


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def exported(keys: GatewayKeys) -> AuditVerifyKey:
    """The key as an auditor gets it: through the exported document, not the gateway's objects."""
    return parse_document(export_document(keys, timezone="Asia/Shanghai", created=START), "exported.json")


def broken(directory: Path, key: GatewayKeys | AuditVerifyKey) -> AuditChainBroken:
    with pytest.raises(AuditChainBroken) as info:
        verify_dir(directory, key)
    return info.value


@pytest.fixture
def log(tmp_path: Path, keys: GatewayKeys) -> Path:
    assert write_days(tmp_path, keys, days=3, per_day=5) == [DAY1, DAY2, DAY3]
    return tmp_path


def test_seals_and_the_head_anchor_carry_a_signature_of_the_audit_signing_key(log: Path, keys: GatewayKeys) -> None:
    seals = [json.loads(line) for name in (DAY1, DAY2) for line in lines_of(log / name)[-1:]]
    assert [s["event"] for s in seals] == ["audit.seal", "audit.seal"]
    assert all(len(s["signature"]) == 128 for s in seals)
    anchor, signature = (log / ".head").read_bytes().splitlines()
    assert json.loads(anchor)["event"] == "audit.head"
    assert len(json.loads(signature)["signature"]) == 128  # over the anchor line's exact bytes
    # The signing seed is derived under its own label: it is none of the gateway's other keys.
    seed = keys.derive(Purpose.AUDIT_SIGNING)
    assert seed not in {keys.derive(p) for p in Purpose if p is not Purpose.AUDIT_SIGNING}


def test_the_exported_key_verifies_an_untouched_log_with_no_gateway_key_anywhere(log: Path, keys: GatewayKeys) -> None:
    key = exported(keys)
    report = verify_dir(log, key)
    assert report.count == 7 + 7 + 6
    assert report.first_time is not None
    assert report.first_time.isoformat() == "2026-11-23T09:00:00+08:00"
    result = walk_dir(log, key, collect=True)
    assert result.public
    assert (result.findings, result.unverified) == ([], [])


@pytest.mark.parametrize(("name", "index"), [(DAY1, 0), (DAY1, 3), (DAY1, 6), (DAY2, 2), (DAY3, 4), (DAY3, 5)])
def test_the_exported_key_finds_an_edited_record_at_its_line(log: Path, keys: GatewayKeys, name: str,
                                                             index: int) -> None:
    lines = lines_of(log / name)
    before = lines[index]
    lines[index] = before.replace(b'"time":"2026', b'"time":"2025', 1)
    assert lines[index] != before
    write_lines(log / name, lines)
    err = broken(log, exported(keys))
    assert (err.file, err.line) == (name, index + 1)
    assert err.what.startswith("modified")


def test_the_exported_key_finds_deleted_swapped_and_forged_lines(log: Path, keys: GatewayKeys) -> None:
    key = exported(keys)
    original = lines_of(log / DAY2)
    lines = list(original)
    del lines[2]
    write_lines(log / DAY2, lines)
    err = broken(log, key)
    assert (err.file, err.line, err.what.split(":")[0]) == (DAY2, 3, "missing")

    lines = list(original)
    lines[2], lines[3] = lines[3], lines[2]
    write_lines(log / DAY2, lines)
    err = broken(log, key)
    assert (err.file, err.line, err.what.split(":")[0]) == (DAY2, 3, "reordered")

    # A forger who links a new record properly (seq, prev) and relinks the next one still breaks the chain.
    lines = list(original)
    good = json.loads(lines[2])
    forged = dict(good, path="/oa/forged", request_id="forged", seq=good["seq"] + 1,
                  prev=hashlib.sha256(lines[2]).hexdigest())
    forged_line = json.dumps(forged, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    lines.insert(3, forged_line)
    write_lines(log / DAY2, lines)
    err = broken(log, key)
    assert (err.file, err.line) == (DAY2, 4)
    assert err.what.startswith("inserted")


def test_the_exported_key_finds_a_cut_tail_and_a_missing_or_stale_anchor(
    log: Path, keys: GatewayKeys, tmp_path_factory: pytest.TempPathFactory
) -> None:
    key = exported(keys)
    saved = (log / DAY3).read_bytes()
    write_lines(log / DAY3, lines_of(log / DAY3)[:-2])
    assert broken(log, key).what.startswith("truncated")
    (log / DAY3).write_bytes(saved)
    head = (log / ".head").read_bytes()
    (log / ".head").unlink()
    err = broken(log, key)
    assert (err.file, err.line) == (".head", 1)
    other = tmp_path_factory.mktemp("other")
    write_days(other, keys, days=3, per_day=5, start=START + timedelta(minutes=1))
    (log / ".head").write_bytes((other / ".head").read_bytes())  # genuinely signed, but for another log
    assert broken(log, key).what.startswith("modified")
    (log / ".head").write_bytes(head.replace(b'"seq":', b'"seq":1', 1))
    assert "signature" in broken(log, key).what


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, bytes]]:
    directory = tmp_path_factory.mktemp("pristine-signed")
    write_days(directory, GatewayKeys.from_bytes(bytes(range(32))), days=2, per_day=4)
    return [(p.name, p.read_bytes()) for p in sorted(directory.iterdir())]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_changing_any_byte_of_the_log_or_its_anchor_fails_with_the_exported_key(
    pristine: list[tuple[str, bytes]], tmp_path: Path, data: st.DataObject
) -> None:
    key = exported(GatewayKeys.from_bytes(bytes(range(32))))
    target = data.draw(st.sampled_from([n for n, _ in pristine if n != ".lock"]), label="file")
    content = dict(pristine)[target]
    pos = data.draw(st.integers(0, len(content) - 1), label="byte")
    new = data.draw(st.integers(0, 255).filter(lambda b: b != content[pos]), label="value")
    case = Path(tempfile.mkdtemp(prefix="case-", dir=tmp_path))
    for name, other in pristine:
        (case / name).write_bytes(content[:pos] + bytes([new]) + content[pos + 1:] if name == target else other)
    err = broken(case, key)
    if target != ".head" and err.file == target:
        line = content[:pos].count(b"\n") + 1
        assert err.line in (line - 1, line, line + 1)  # the edited record (or, for its `prev`, the one it names)


def test_records_written_with_the_exported_key_alone_do_not_verify(log: Path, keys: GatewayKeys,
                                                                   tmp_path: Path) -> None:
    document = export_document(keys, timezone="Asia/Shanghai", created=START)
    key = parse_document(document, "exported.json")
    # What an holder of the exported key could try: use its bytes as a gateway key and append through the real
    # writer, to the real log and to a log of their own.
    raw = bytes.fromhex(hashlib.sha256(document).hexdigest())
    for material in (raw, key.public.public_bytes_raw()):
        fake = GatewayKeys.from_bytes(material)
        copy = tmp_path / f"forged-{material.hex()[:8]}"
        shutil.copytree(log, copy)
        writer = AuditDir(copy, fake, AuditAlgorithm.HMAC_SHA256, TZ)
        now = START + timedelta(days=2, hours=1)
        try:
            writer.append([event_record(access_event(500, now, path="/oa/forged"), fake)], now)
        finally:
            writer.close()
        assert broken(copy, key).what  # found
        own = tmp_path / f"own-{material.hex()[:8]}"
        write_days(own, fake, days=2, per_day=2)
        verify_dir(own, fake)  # a consistent log under the fake key...
        assert broken(own, key).what  # ...that the auditor's key does not accept


def test_the_exported_document_holds_nothing_secret_and_signs_nothing(keys: GatewayKeys) -> None:
    document = export_document(keys, timezone="Asia/Shanghai", created=START)
    text = document.decode("utf-8")
    secrets = [keys._master, *(keys.derive(p) for p in Purpose)]
    for secret in secrets:
        for form in (secret.hex(), secret.hex().upper(), __import__("base64").b64encode(secret).decode()):
            assert form not in text
    assert json.loads(text)["format"] == "govgate-audit-verify-key"
    key = parse_document(document, "k")
    assert key.key_id == AuditSigner.from_keys(keys).key_id == verify_key_of(keys).key_id
    # Whatever an auditor derives from it, it is not the gateway's key: leave links and TOTP secrets stay safe.
    fake = GatewayKeys.from_bytes(key.public.public_bytes_raw())
    assert not verify_leave("https://evil.example/", leave_url("/__govgate", "https://evil.example/", fake)
                            .split("sig=")[1], keys)
    sealed = totp.encrypt_secret(keys, "zhangsan", totp.new_totp_secret())
    with pytest.raises(AccountError, match="does not decrypt"):
        totp.decrypt_secret(fake, "zhangsan", sealed)


def test_a_document_that_is_not_an_exported_key_is_refused(keys: GatewayKeys) -> None:
    with pytest.raises(KeyFileError):
        parse_document(b"00" * 32, "gateway.key")
    doc = json.loads(export_document(keys, timezone="UTC", created=START))
    doc["key_id"] = "0" * 16
    with pytest.raises(KeyFileError, match="does not match"):
        parse_document(json.dumps(doc).encode(), "k")


def test_a_log_written_before_signatures_verifies_with_the_gateway_key_and_after_one_append_with_the_exported_one(
    tmp_path: Path, keys: GatewayKeys
) -> None:
    directory = tmp_path / "audit"
    shutil.copytree(BEFORE_SIGNATURES, directory)
    assert b"signature" not in b"".join(p.read_bytes() for p in directory.iterdir())
    assert verify_dir(directory, keys).count == 13 + 1
    err = broken(directory, exported(keys))
    assert (err.file, err.line) == (".head", 1)
    assert "not signed" in err.what
    # The gateway appends once (as it does at start): its signed anchor vouches for the old records too.
    writer = AuditDir(directory, keys, AuditAlgorithm.HMAC_SHA256, TZ)
    now = START + timedelta(days=2, hours=2)
    try:
        writer.append([event_record(access_event(77, now), keys)], now)
    finally:
        writer.close()
    assert verify_dir(directory, exported(keys)).count == 13 + 2
    assert verify_dir(directory, keys).count == 13 + 2
    lines = lines_of(directory / DAY1)
    lines[2] = lines[2].replace(b"/oa/doc/", b"/oa/dac/")
    write_lines(directory / DAY1, lines)
    assert broken(directory, exported(keys)).line == 3
