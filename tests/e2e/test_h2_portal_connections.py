"""HTTP/2 clients in front of an HTTP/1.1 portal: portal connections are reused, bounded, and never shared.

A real gateway (TLS, HTTP/2 towards the client) in front of a portal that counts its connections
(tests/e2e/counting_portal.py). Before govgate/addons/h1_pool.py every HTTP/2 stream opened a portal
connection of its own (1,000 streams: 1,000 connections); now the streams of one client connection share at
most ``MAX_PER_CLIENT`` of them, one stream at a time each, and a connection whose answer ended it (close,
HTTP/1.0, cut short, timed out) is not used again.
"""

from __future__ import annotations

import hashlib
import re
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import trustme

from govgate.addons.h1_pool import MAX_PER_CLIENT
from tests.e2e.counting_portal import TRICKLE_SECONDS, CountingPortal, Counts
from tests.e2e.h2client import Answer, H2Session, h2_many
from tests.e2e.harness import Gateway, read_records, start_gateway, wait_for_record
from tests.policies import policy_data, write_policy
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

UPSTREAM_TIMEOUT_S = 2


@dataclass
class H2Gateway:
    gw: Gateway
    ca: trustme.CA
    portal: CountingPortal

    @property
    def port(self) -> int:
        return int(self.gw.url.rsplit(":", 1)[1])

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        return ctx

    def session(self) -> H2Session:
        return H2Session(self.port, self.context())

    def fresh(self) -> None:
        """Wait until the portal's connections of earlier tests are closed, then count from zero."""
        deadline = time.monotonic() + 10
        while self.portal.snapshot().open and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.portal.snapshot().open == 0, "portal connections of an earlier test are still open"
        self.portal.reset()


@pytest.fixture(scope="module")
def h2gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[H2Gateway]:
    portal = CountingPortal()
    workdir = tmp_path_factory.mktemp("h2pool")
    (workdir / "secrets").mkdir()
    ca = trustme.CA()
    pem = workdir / "secrets" / "gateway.pem"
    ca.issue_cert("portal.example.gov.cn", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    pem.chmod(0o600)
    data = policy_data(workdir, portal.url)
    data["gateway"].update(insecure=False, tls={"cert": str(pem)}, upstream_timeout=f"{UPSTREAM_TIMEOUT_S}s")
    write_policy(workdir / "policy.yaml", data)
    gw = start_gateway(workdir / "policy.yaml")
    try:
        yield H2Gateway(gw, ca, portal)
    finally:
        assert gw.stop() == 0
        portal.stop()


def h2load(gw: H2Gateway, requests: int, streams: int, path: str) -> str:
    out = subprocess.run(["h2load", "-n", str(requests), "-c1", f"-m{streams}", "-T10",
                          f"https://127.0.0.1:{gw.port}{path}"], capture_output=True, text=True, timeout=60).stdout
    assert "Application protocol: h2" in out, out
    return out


def get(path: str) -> tuple[str, str, bytes]:
    return ("GET", path, b"")


def ok(answer: Answer, path: str) -> bool:
    return answer.status == 200 and answer.body == path.encode()


@pytest.mark.parametrize("streams", [1, 10])
def test_many_streams_use_a_few_portal_connections(h2gw: H2Gateway, streams: int) -> None:
    h2gw.fresh()
    out = h2load(h2gw, 300, streams, "/echo/public/n/x")
    assert re.search(r"300 done, 300 succeeded, 0 failed", out), out
    assert re.search(r"status codes: 300 2xx", out), out
    counts = h2gw.portal.snapshot()
    assert counts.requests == 300
    # One stream at a time: one connection does. Ten at a time: mitmproxy's bound of 5 per client connection.
    assert counts.accepted <= (1 if streams == 1 else MAX_PER_CLIENT), counts
    assert counts.most_open <= MAX_PER_CLIENT, counts


def test_concurrent_streams_each_get_their_own_answer(h2gw: H2Gateway) -> None:
    h2gw.fresh()
    kinds = ["n", "chunked", "slow", "n", "close", "n", "http10", "chunked"]
    requests = [get(f"/echo/public/{kinds[i % len(kinds)]}/{i}") for i in range(40)]
    bodies = {40: b"", 41: b"a" * 1000, 42: bytes(range(256)) * 40, 43: b"z" * 30000}
    requests += [("POST", f"/echo/public/n/{i}", body) for i, body in bodies.items() if body]
    answers = h2_many(h2gw.port, h2gw.context(), requests)
    for (method, path, body), answer in zip(requests, answers, strict=True):
        assert answer.status == 200, (path, answer)
        if method == "POST":
            assert answer.body == b"%s %d %s" % (path.encode(), len(body), hashlib.sha256(body).hexdigest().encode())
        else:
            assert answer.body == path.encode(), (path, answer)
    counts = h2gw.portal.snapshot()
    closing = sum(1 for _, path, _ in requests if "/close/" in path or "/http10/" in path)
    assert counts.requests == len(requests)
    # Each close/HTTP-1.0 answer ends its connection; the rest shared at most MAX_PER_CLIENT at a time.
    assert counts.accepted <= closing + MAX_PER_CLIENT, counts
    assert counts.accepted < len(requests) // 2, counts
    # (+1: a connection the gateway closed after its answer may look open to the portal a moment longer.)
    assert counts.most_open <= MAX_PER_CLIENT + 1, counts


def per_connection_after(gw: H2Gateway, steps: list[list[str]]) -> tuple[list[list[Answer]], Counts]:
    """Run each step's paths as concurrent streams, step after step, on one client connection."""
    with gw.session() as session:
        answers = [session.many([get(p) for p in step]) for step in steps]
        counts = gw.portal.snapshot()
    return answers, counts


def test_an_answer_that_ends_its_connection_is_not_followed_on_it(h2gw: H2Gateway) -> None:
    h2gw.fresh()
    paths = ["/echo/public/n/1", "/echo/public/close/2", "/echo/public/n/3", "/echo/public/http10/4",
             "/echo/public/n/5", "/echo/public/chunked/6", "/echo/public/n/7"]
    answers, counts = per_connection_after(h2gw, [[p] for p in paths])
    assert all(ok(a[0], p) for a, p in zip(answers, paths, strict=True)), answers
    # Connection: close after 2, an HTTP/1.0 answer read to the close after 4; the chunked one keeps its connection.
    assert counts.per_connection == [2, 2, 3], counts


def test_an_answer_cut_short_fails_alone_and_its_connection_is_not_reused(h2gw: H2Gateway) -> None:
    h2gw.fresh()
    answers, counts = per_connection_after(h2gw, [["/echo/public/n/1"], ["/echo/public/cut/2"],
                                                  ["/echo/public/n/3"], ["/echo/public/n/4"]])
    assert ok(answers[0][0], "/echo/public/n/1")
    cut = answers[1][0]
    assert cut.reset or cut.status == 502, cut  # the gate's error page, or the stream reset
    assert ok(answers[2][0], "/echo/public/n/3")
    assert ok(answers[3][0], "/echo/public/n/4")
    assert counts.per_connection == [2, 2], counts


def test_an_upstream_timeout_closes_its_connection_and_the_next_stream_gets_a_new_one(h2gw: H2Gateway) -> None:
    h2gw.fresh()
    started = time.monotonic()
    answers, counts = per_connection_after(h2gw, [["/echo/public/n/1"], ["/echo/public/hang/2"],
                                                  ["/echo/public/n/3"]])
    assert time.monotonic() - started >= UPSTREAM_TIMEOUT_S
    assert ok(answers[0][0], "/echo/public/n/1")
    assert answers[1][0].status == 504, answers[1]
    assert ok(answers[2][0], "/echo/public/n/3")
    assert counts.per_connection == [2, 1], counts


def test_a_stream_waiting_for_a_portal_connection_is_bounded_by_the_upstream_timeout_too(h2gw: H2Gateway) -> None:
    # MAX_PER_CLIENT streams hang at the portal; the next one waits for a connection. Its timeout counts from its
    # request (waiting is part of connecting): when its turn comes it is answered 504, never sent on to hang
    # where no timer watches it any more (which held the stream until mitmproxy's 600 s tcp_timeout).
    h2gw.fresh()
    paths = [f"/echo/public/hang/{i}" for i in range(MAX_PER_CLIENT + 1)]
    started = time.monotonic()
    with H2Session(h2gw.port, h2gw.context(), timeout=4 * UPSTREAM_TIMEOUT_S + 5) as session:
        answers = session.many([get(p) for p in paths])
    assert [a.status for a in answers] == [504] * len(paths), answers
    assert time.monotonic() - started < 2 * UPSTREAM_TIMEOUT_S + 3
    # (The one that waited may still have reached the portal, on a slot freed just as its time ran out.)
    assert h2gw.portal.snapshot().requests in (MAX_PER_CLIENT, MAX_PER_CLIENT + 1)


def test_a_waiting_stream_that_times_out_leaves_the_streams_that_have_their_answers_alone(h2gw: H2Gateway) -> None:
    # Streams sent together share the first connect (mitmproxy attaches them to it) and are then moved to
    # connections of their own, or to the pool's queue. When the waiting one's time runs out, only a connect it
    # still waits on may be cancelled: never a connection another stream is reading its answer from (their
    # timers stopped at the answer's head; the bodies take TRICKLE_SECONDS, longer than the timeout).
    assert TRICKLE_SECONDS > UPSTREAM_TIMEOUT_S
    h2gw.fresh()
    paths = [f"/echo/public/trickle/{i}" for i in range(MAX_PER_CLIENT)] + ["/echo/public/n/waiting"]
    with H2Session(h2gw.port, h2gw.context(), timeout=30) as session:
        answers = session.many([get(p) for p in paths])
    for path, answer in zip(paths[:-1], answers[:-1], strict=True):
        assert answer.status == 200, (path, answer)
        assert answer.body == path.encode() * 10, (path, answer)
    assert answers[-1].status in (200, 504), answers[-1]  # served once a slot freed, or its own time ran out


def test_an_idle_portal_connection_is_closed_once_stale_while_its_client_connection_stays_open(
        h2gw: H2Gateway) -> None:
    from govgate.addons.h1_pool import IDLE_REUSE_SECONDS, WAIT_CHECK_SECONDS

    h2gw.fresh()
    with h2gw.session() as session:
        assert ok(session.many([get("/echo/public/n/1")])[0], "/echo/public/n/1")
        assert h2gw.portal.snapshot().open == 1  # kept for the next stream
        idle_from = time.monotonic()
        deadline = idle_from + IDLE_REUSE_SECONDS + WAIT_CHECK_SECONDS + 2
        while h2gw.portal.snapshot().open and time.monotonic() < deadline:
            time.sleep(0.05)
        closed_after = time.monotonic() - idle_from
        assert h2gw.portal.snapshot().open == 0, "the idle portal connection was kept past its reuse time"
        assert closed_after >= IDLE_REUSE_SECONDS - 0.1
        assert ok(session.many([get("/echo/public/n/2")])[0], "/echo/public/n/2")  # a new one, on the same client
    assert h2gw.portal.snapshot().accepted == 2


@pytest.mark.parametrize("how", ["reset", "goaway"])
def test_a_client_that_gives_up_on_a_stream_is_no_portal_failure_in_the_audit_log(h2gw: H2Gateway, how: str) -> None:
    # A browser cancels streams all the time (a page left, a fetch aborted): RST_STREAM, or GOAWAY on leaving. The
    # portal did nothing wrong, so there is no upstream.error record (decision "error") and no warning for it.
    h2gw.fresh()
    audit = h2gw.gw.workdir / "audit"
    before = sum(1 for r in read_records(audit) if r["event"] == "upstream.error")
    path = f"/echo/public/hang/{how}"
    with h2gw.session() as session:
        conn = session.conn
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "GET"), (":path", path), (":scheme", "https"),
                                (":authority", session.authority)], end_stream=True)
        session.tls.sendall(conn.data_to_send())
        wait_for(lambda: h2gw.portal.snapshot().requests == 1, 10, "the request at the portal")
        if how == "reset":
            conn.reset_stream(sid)
        else:
            conn.close_connection()
        session.tls.sendall(conn.data_to_send())
        # The gateway closes the portal connection of the stream given up: by then its error has been handled.
        wait_for(lambda: h2gw.portal.snapshot().open == 0, 10, "the portal connection closed")
    access = wait_for_record(audit, "the access record", lambda r: r["event"] == "access" and r["path"] == path)
    assert not [r for r in read_records(audit) if r["event"] == "upstream.error"][before:], access
    assert not [line for line in h2gw.gw.output.lines if "upstream.error" in line and access["request_id"] in line]


def test_a_client_connection_never_gets_another_clients_portal_connection(h2gw: H2Gateway) -> None:
    h2gw.fresh()
    with h2gw.session() as a, h2gw.session() as b:
        assert ok(a.many([get("/echo/public/n/a1")])[0], "/echo/public/n/a1")
        # a's portal connection is idle and open now; b must not get it.
        assert ok(b.many([get("/echo/public/n/b1")])[0], "/echo/public/n/b1")
        assert ok(a.many([get("/echo/public/n/a2")])[0], "/echo/public/n/a2")
        assert ok(b.many([get("/echo/public/n/b2")])[0], "/echo/public/n/b2")
        counts = h2gw.portal.snapshot()
    assert counts.per_connection == [2, 2], counts
    assert counts.open == 2, counts


def test_portal_connections_close_when_their_client_connection_does(h2gw: H2Gateway) -> None:
    h2gw.fresh()
    answers, counts = per_connection_after(h2gw, [[f"/echo/public/slow/{i}" for i in range(5)]])
    assert all(ok(a, f"/echo/public/slow/{i}") for i, a in enumerate(answers[0]))
    assert counts.open == 5, counts  # five idle ones kept for the client connection
    deadline = time.monotonic() + 5
    while h2gw.portal.snapshot().open and time.monotonic() < deadline:
        time.sleep(0.05)
    assert h2gw.portal.snapshot().open == 0


def test_a_body_without_content_length_reaches_the_portal_as_the_body_not_as_a_request(h2gw: H2Gateway) -> None:
    """HTTP/2 frames a body itself; forwarded to HTTP/1.1 without a length, the body's bytes would be read by the
    portal as a request of their own, one the gate never decided on (and its answer taken for the next stream's)."""
    h2gw.fresh()
    smuggled = b"GET /oa/secret HTTP/1.1\r\nHost: portal.example.gov.cn\r\n\r\n"
    with h2gw.session() as session:
        posted = session.many([("POST", "/echo/public/n/1", smuggled)], lengths=False)[0]
        after = session.many([get("/echo/public/n/2")])[0]
        counts = h2gw.portal.snapshot()
    assert posted.status == 200, posted
    assert posted.body == b"/echo/public/n/1 %d %s" % (len(smuggled), hashlib.sha256(smuggled).hexdigest().encode())
    assert ok(after, "/echo/public/n/2")
    assert counts.requests == 2, counts  # the POST and the GET: nothing from inside the body
    assert counts.per_connection == [2], counts
