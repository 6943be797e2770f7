"""`govgate demo`: a first look on a fresh machine (``docs/cli.md``, README)."""

from __future__ import annotations

import re
import signal
import subprocess

import httpx
import pytest

from tests.command import GOVGATE
from tests.e2e.harness import OutputReader
from tests.e2e.login import Browser
from tests.ports import free_port

pytestmark = pytest.mark.e2e


def test_demo_prints_what_a_first_user_needs_logs_in_and_exits_0_on_sigterm() -> None:
    port = free_port()
    proc = subprocess.Popen([*GOVGATE, "demo", "--listen", f"127.0.0.1:{port}"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out = OutputReader(proc.stdout)
    try:
        out.wait_for_line(r"Ctrl-C to stop")
        text = out.text()
        password = re.search(r"password: (\S+)", text).group(1)  # type: ignore[union-attr]
        uri = re.search(r"otpauth://\S+", text).group(0)  # type: ignore[union-attr]
        secret = re.search(r"secret=([A-Z2-7]+)", uri).group(1)  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        assert f"{base}/" in text
        assert httpx.get(base + "/").status_code == 200
        b = Browser(base)
        assert b.login("demo", password, secret).status_code == 303
        assert b.http.get("/oa/").status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(15)
        out.join()
        assert proc.stdout is not None
        proc.stdout.close()
    assert code == 0
