"""The syslog mirror (RFC 5424) receives every written record and never holds up the local chain."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from govgate.audit.syslog import format_message, parse_syslog_url
from govgate.audit.verify import verify_dir
from govgate.audit.writer import AuditWriter
from govgate.core.keys import GatewayKeys
from tests.ports import free_port
from tests.runtime import Clock

from .conftest import access_event, audit_config

MakeWriter = Callable[..., AuditWriter]
RFC5424 = re.compile(rb"<(\d+)>1 (\S+) (\S+) govgate (\d+) (\S+) - \xef\xbb\xbf(\{.*\})\Z", re.S)


@pytest.fixture
def collector() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock
    sock.close()


def test_every_record_is_mirrored_as_an_rfc5424_message(
    tmp_path: Path, keys: GatewayKeys, clock: Clock, make_writer: MakeWriter, collector: socket.socket
) -> None:
    port = collector.getsockname()[1]
    writer = make_writer(audit_config(tmp_path, syslog=f"udp://127.0.0.1:{port}"))
    writer.start()
    writer.emit(access_event(3, clock.now))  # a refusal (n % 3 == 0)
    writer.emit(access_event(4, clock.now))
    assert writer.close(timeout=5)
    messages = [collector.recv(65535) for _ in range(3)]  # link record + two events
    parsed = [RFC5424.match(m) for m in messages]
    assert all(parsed)
    events = [json.loads(m.group(6)) for m in parsed if m is not None]
    assert [e["event"] for e in events] == ["audit.link", "access", "access"]
    pri = [int(m.group(1)) for m in parsed if m is not None]
    assert pri[1] == 13 * 8 + 5  # log audit, notice: a refusal
    assert pri[2] == 13 * 8 + 6  # log audit, info
    local = [line.encode() for line in next(tmp_path.glob("audit-*.jsonl")).read_text().splitlines()]
    assert [m.group(6) for m in parsed if m is not None] == local  # the very chained lines, MAC included


def test_an_absent_collector_does_not_stop_the_local_log(
    tmp_path: Path, keys: GatewayKeys, clock: Clock, make_writer: MakeWriter
) -> None:
    port = free_port()  # nobody listens here
    writer = make_writer(audit_config(tmp_path, syslog=f"tcp://127.0.0.1:{port}"))
    writer.start()
    for n in range(20):
        writer.emit(access_event(n, clock.now))
    assert writer.close(timeout=5)
    assert writer.healthy is False  # closed
    assert verify_dir(tmp_path, keys).count == 21


def test_syslog_urls_are_checked() -> None:
    assert parse_syslog_url("udp://10.0.0.5").port == 514
    assert parse_syslog_url("tcp://siem.example.gov.cn:6514").transport == "tcp"
    with pytest.raises(ValueError, match="udp://"):
        parse_syslog_url("http://siem:514")


def test_message_ids_are_printable_ascii() -> None:
    msg = format_message('{"event":"登录 失败","time":"2026-11-25T10:00:00+08:00"}'.encode(), "gw 1", 7)
    assert msg.startswith(b"<110>1 2026-11-25T10:00:00+08:00 gw_1 govgate 7 _____ - ")
