"""No content of an audit file can crash `verify` or stop the writer: a hostile line is a modified record (Art. 20)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from govgate.audit.log_dir import AuditDir
from govgate.audit.verify import verify_dir
from govgate.cli.main import run_cli
from govgate.core.audit_chain import event_record
from govgate.core.keys import GatewayKeys
from govgate.core.policy.model import AuditAlgorithm
from govgate.errors import AuditChainBroken
from tests.command import GOVGATE
from tests.runtime import Clock

from .conftest import START, TZ, access_event, audit_config, write_days
from .test_writer import MakeWriter

DAY1 = "audit-2026-11-23.jsonl"


def with_mac(line: bytes, mac: str) -> bytes:
    """``line`` with its ``mac`` value replaced, still in canonical form (so only the MAC check can refuse it)."""
    head = line[: line.rindex(b',"mac":"')]
    return head + b',"mac":' + json.dumps(mac, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"}"


def with_prev(line: bytes, prev: str) -> bytes:
    record = json.loads(line)
    old = json.dumps(record["prev"]).encode()
    return line.replace(b'"prev":' + old, b'"prev":' + json.dumps(prev, ensure_ascii=False).encode("utf-8"), 1)


HOSTILE: dict[str, Callable[[bytes], bytes]] = {
    "non-ASCII MAC": lambda line: with_mac(line, "é"),
    "non-ASCII MAC of digest length": lambda line: with_mac(line, "é" * 64),
    "upper-case MAC": lambda line: with_mac(line, json.loads(line)["mac"].upper()),
    "short MAC": lambda line: with_mac(line, json.loads(line)["mac"][:10]),
    "non-ASCII prev": lambda line: with_prev(line, "é" * 64),
    "lone surrogate MAC": lambda line: line[: line.rindex(b',"mac":"')] + b',"mac":"\\ud800"}',
    "100,000 nested lists": lambda line: b"[" * 100_000,
    "100,000 nested objects": lambda line: b'{"a":' * 100_000,
    "invalid UTF-8": lambda line: b"\xff\xfe" + line,
    "a huge number": lambda line: b'{"seq":' + b"9" * 10_000 + b"}",
    "a seq far ahead without the key": lambda line: line.replace(b'"seq":', b'"seq":1000000', 1),
    "a negative seq without the key": lambda line: line.replace(b'"seq":', b'"seq":-', 1),
    "a time without an offset": lambda line: line.replace(b'+08:00"', b'"', 1),
}


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def replace_line(path: Path, index: int, make: Callable[[bytes], bytes]) -> None:
    lines = lines_of(path)
    lines[index] = make(lines[index])
    path.write_bytes(b"".join(line + b"\n" for line in lines))


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_hostile_line_is_reported_as_modified_at_its_place(tmp_path: Path, keys: GatewayKeys, kind: str) -> None:
    write_days(tmp_path, keys, days=1, per_day=4)
    replace_line(tmp_path / DAY1, 2, HOSTILE[kind])
    with pytest.raises(AuditChainBroken) as info:
        verify_dir(tmp_path, keys)
    assert (info.value.file, info.value.line) == (DAY1, 3)
    assert info.value.what.startswith("modified")


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_the_writer_carries_on_after_a_hostile_last_line_and_says_so(
    tmp_path: Path, keys: GatewayKeys, clock: Clock, make_writer: MakeWriter, kind: str
) -> None:
    write_days(tmp_path, keys, days=1, per_day=2)
    replace_line(tmp_path / DAY1, -1, HOSTILE[kind])
    writer = make_writer(audit_config(tmp_path))
    writer.start()
    writer.emit(access_event(7, clock.now))
    assert writer.flush()
    assert writer.healthy
    assert writer.last_error is None
    assert writer.close(timeout=5)
    tail = lines_of(tmp_path / DAY1)[-2:]
    assert [json.loads(line)["event"] for line in tail] == ["audit.damaged", "access"]
    assert [json.loads(line)["seq"] for line in tail] == [3, 4]  # the hostile line stood for seq 2
    with pytest.raises(AuditChainBroken) as info:
        verify_dir(tmp_path, keys)
    assert (info.value.file, info.value.line) == (DAY1, 3)  # the hostile line itself
    assert info.value.what.startswith("modified")


def test_the_verify_command_names_a_hostile_line_without_a_traceback(tmp_path: Path, keys: GatewayKeys) -> None:
    directory = tmp_path / "audit"
    write_days(directory, keys, days=1, per_day=3)
    replace_line(directory / DAY1, 1, HOSTILE["100,000 nested lists"])
    key_file = tmp_path / "gateway.key"
    key_file.write_text(bytes(range(32)).hex() + "\n")
    done = subprocess.run(
        [*GOVGATE, "audit", "verify", "--dir", str(directory), "--key-file", str(key_file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 1
    assert f"{directory / DAY1}:2: modified" in done.stdout
    assert "Traceback" not in done.stderr


def test_the_verify_command_names_a_non_ascii_mac(
    tmp_path: Path, keys: GatewayKeys, capsys: pytest.CaptureFixture[str]
) -> None:
    write_days(tmp_path, keys, days=1, per_day=3)
    replace_line(tmp_path / DAY1, 3, HOSTILE["non-ASCII MAC"])
    key_file = tmp_path / "gateway.key"
    key_file.write_text(bytes(range(32)).hex() + "\n")
    assert run_cli(["audit", "verify", "--dir", str(tmp_path), "--key-file", str(key_file)]) == 1
    assert f"{tmp_path / DAY1}:4: modified" in capsys.readouterr().out


# Lines an attacker might write: raw bytes, text, JSON values, and real records with one field swapped.
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def hostile_lines(draw: st.DrawFn, original: bytes) -> bytes:
    kind = draw(st.sampled_from(["bytes", "text", "json", "field", "nested"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "text":
        return draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
    if kind == "json":
        return json.dumps(draw(_json_values), ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    if kind == "nested":
        depth = draw(st.integers(900, 120_000))
        return draw(st.sampled_from([b"[", b'{"a":', b'{"mac":['])) * depth
    record = json.loads(original)
    field = draw(st.sampled_from(sorted(record)))
    record[field] = draw(_json_values)
    text = json.dumps({k: v for k, v in record.items() if k != "mac"}, sort_keys=True, separators=(",", ":"))
    mac = json.dumps(record.get("mac"), ensure_ascii=False)
    return (text[:-1] + ',"mac":' + mac + "}").encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def pristine_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pristine")
    write_days(directory, GatewayKeys.from_bytes(bytes(range(32))), days=1, per_day=3)
    return directory


@pytest.fixture(scope="module")
def pristine(pristine_dir: Path) -> list[bytes]:
    return lines_of(pristine_dir / DAY1)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_verify_either_passes_or_names_a_broken_record_whatever_a_line_holds(
    pristine: list[bytes], pristine_dir: Path, tmp_path: Path, data: st.DataObject
) -> None:
    keys = GatewayKeys.from_bytes(bytes(range(32)))
    index = data.draw(st.integers(0, len(pristine)), label="line")  # len(pristine): a line appended
    lines = list(pristine)
    original = lines[min(index, len(lines) - 1)]
    hostile = data.draw(hostile_lines(original), label="hostile")
    if index == len(lines):
        lines.append(hostile)
    else:
        lines[index] = hostile
    case = Path(tempfile.mkdtemp(dir=tmp_path))
    (case / DAY1).write_bytes(b"".join(line + b"\n" for line in lines))
    shutil.copy(pristine_dir / ".head", case / ".head")  # the anchor names the pristine log's newest record
    found: AuditChainBroken | None = None
    try:
        verify_dir(case, keys)
    except AuditChainBroken as exc:  # anything else (TypeError, RecursionError, ...) fails the test
        found = exc
    if found is not None:
        assert found.file == DAY1
        assert 1 <= found.line <= len(lines) + 1
    # And the writer carries on after it, whatever it was.
    log = AuditDir(case, keys, AuditAlgorithm.HMAC_SHA256, TZ)
    try:
        written = log.append([event_record(access_event(1, START), keys)], START)
    finally:
        log.close()
    assert written
    assert json.loads(written[-1])["event"] == "access"


@pytest.mark.parametrize("as_json", [False, True])
@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_show_skips_or_escapes_a_hostile_line_and_prints_the_others(
    tmp_path: Path, keys: GatewayKeys, capsys: pytest.CaptureFixture[str], kind: str, as_json: bool
) -> None:
    write_days(tmp_path, keys, days=1, per_day=3)
    replace_line(tmp_path / DAY1, 2, HOSTILE[kind])
    key_file = tmp_path / "gateway.key"
    key_file.write_text(bytes(range(32)).hex() + "\n")
    argv = ["audit", "show", "--dir", str(tmp_path), "--key-file", str(key_file), "--since", "2026-11-23T00:00"]
    assert run_cli([*argv, "--json"] if as_json else argv) == 0
    out = capsys.readouterr().out
    for n in (0, 2):  # the records around the hostile line
        assert f"req-{n}" in out
