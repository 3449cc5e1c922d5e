"""A buggy or hostile client against a live server: it is refused or dropped
with one log line, what it made the server hold is bounded and given back,
and a witness client doing an acked call every 100 ms keeps being answered
quickly (its worst round trip is asserted loosely: a guard, not a benchmark).
"""

import collections
import gc
import json
import logging
import os
import socket
import struct
import sys
import time

import gevent
import gevent.event
import pytest
import requests
import websocket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tgext.socketio import BaseNamespace
from tgext.socketio._engine.runtime import runtime_of
from tgext.socketio._memory import trimmer as memory
from tgext.socketio._serving.engineio_session import MESSAGES_PER_TURN

NAMESPACE = "/abuse"


class Abuse(BaseNamespace):
    def on_add(self, a, b):
        return a + b

    def on_echo(self, *args):
        return args

    def on_send_many(self, count, size):
        for _ in range(count):
            self.emit("blob", "x" * size)

    def on_slow(self):
        gevent.sleep(0.05)


@pytest.fixture(autouse=True)
def fresh_rejection_log(monkeypatch):
    """Each test starts with the whole burst of log lines (20) to spend.

    The budget of other client-caused lines (tests/test_client_log.py) is
    lifted: a summary of held lines would be a greenlet these tests count.
    """
    from tgext.socketio._serving import clientlog
    from tgext.socketio._serving import engineio_session as transport

    monkeypatch.setattr(transport, "rejections", transport.RejectionLog(transport.log))
    monkeypatch.setattr(
        clientlog, "client_lines", clientlog.BurstLog(clientlog.log, 10**9, 60, "%d %g %s")
    )


@pytest.fixture(autouse=True)
def quick_retirement(monkeypatch):
    """Idle dispatcher workers retire after 0.5 s instead of 5 (the period
    is read at each wait): a test waiting for the greenlets of a burst to
    end waits a second, not ten."""
    from tgext.socketio._engine import dispatch

    monkeypatch.setattr(dispatch, "IDLE_WORKER_SECONDS", 0.5)


@pytest.fixture(autouse=True)
def quick_trims(monkeypatch):
    """The memory trimmer's greenlet (tgext/socketio/memory.py) trims 0.6 s
    after a wave's last close and once more 1 s later, instead of 6 and 10
    s: the same tenth as ``quick_retirement``. A test waiting for the
    greenlets to return to the baseline waits for that one too: 1.6 s, not
    16."""
    monkeypatch.setattr(memory, "TRIM_DELAY", 0.6)
    monkeypatch.setattr(memory, "TRIM_INTERVAL", 1)


@pytest.fixture
def server(serve):
    # a client gone without a goodbye is dropped 6 s later; a process
    # stalled for the ping timeout (a loaded machine) drops its own witness
    # (its pong is read after the timeout fired): 5 s, not 2
    return serve(
        {"abuse": Abuse}, config={"socketio.ping_interval": 1, "socketio.ping_timeout": 5}
    )


# -- what the test process holds -------------------------------------------------


def live_greenlets(kinds=False):
    gc.collect()
    alive = [obj for obj in gc.get_objects() if isinstance(obj, gevent.Greenlet) and not obj.dead]
    if kinds:  # what they run, for an assertion's message
        return collections.Counter(getattr(g._run, "__qualname__", repr(g._run)) for g in alive)
    return len(alive)


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def sessions(server):
    (engine,) = runtime_of(server.app_config).engines
    return len(engine.eio.sockets)


class Baseline:
    """Greenlets, fds and sessions before the abuse; ``settle()`` waits for them."""

    def __init__(self, server, wait_for):
        self.server, self.wait_for = server, wait_for
        gevent.sleep(0.1)
        self.greenlets, self.fds, self.sessions = (
            live_greenlets(),
            open_fds(),
            sessions(server),
        )

    def settle(self, timeout=10):
        """Wait until sessions, fds and greenlets are back to the baseline."""
        deadline = time.monotonic() + timeout
        while True:
            # sessions and fds first: counting greenlets is a full collection,
            # which holds the loop (and the sweep that ends the sessions
            # waited for) for tens of ms; so it is done only once they are
            # back, and at most every 0.2 s
            now = (sessions(self.server), open_fds())
            back = now[0] <= self.sessions and now[1] <= self.fds
            if back:
                now += (live_greenlets(),)
                if now[2] <= self.greenlets:
                    return
            if time.monotonic() > deadline:
                if not back:
                    now += (live_greenlets(),)
                raise AssertionError(
                    "sessions, fds, greenlets: %s, baseline %s; greenlets running %s"
                    % (now, (self.sessions, self.fds, self.greenlets), live_greenlets(True))
                )
            gevent.sleep(0.2 if back else 0.05)


class Witness:
    """A well-behaved client: an acked ``add`` every 100 ms, timed."""

    def __init__(self, server):
        self.client = server.connect(namespaces=[NAMESPACE])
        self.round_trips = []
        self.failures = []
        #: when (since it started) and why its connection ended, if it did
        self.disconnects = []
        self._started = time.monotonic()
        self.client.on("disconnect", self._disconnected, namespace=NAMESPACE)
        self._greenlet = gevent.spawn(self._run)

    def _disconnected(self, *reason):
        self.disconnects.append((round(time.monotonic() - self._started, 1), reason))

    def _run(self):
        number = 0
        while True:
            number += 1
            started = time.monotonic()
            try:
                answer = self.client.call("add", (number, 1), namespace=NAMESPACE, timeout=5)
            except Exception as error:  # noqa: BLE001 - recorded, asserted later
                self.failures.append(repr(error))
            else:
                if answer != number + 1:
                    self.failures.append("add(%d, 1) answered %r" % (number, answer))
            self.round_trips.append(time.monotonic() - started)
            gevent.sleep(0.1)

    def stop(self):
        """Stop; assert it was always answered, in under ``worst`` seconds."""
        gevent.sleep(0.3)  # a few round trips after the abuse too
        self._greenlet.kill()
        self.client.disconnect()
        return max(self.round_trips)

    def assert_healthy(self, worst=1.0):
        slowest = self.stop()
        assert not self.failures, "%s; disconnects: %s" % (self.failures, self.disconnects)
        assert len(self.round_trips) >= 3
        assert slowest < worst, "the witness waited %.3f s" % slowest


@pytest.fixture
def watched(server, wait_for):
    """``(server, baseline, witness)``: the baseline includes the witness."""
    before = sessions(server)  # LiveServer's own readiness probe may hold one
    warm_up = server.connect(namespaces=[NAMESPACE])  # lazy imports, first tasks
    warm_up.call("add", (1, 1), namespace=NAMESPACE, timeout=5)
    warm_up.disconnect()
    wait_for(lambda: sessions(server) <= before)
    witness = Witness(server)
    gevent.sleep(0.3)
    baseline = Baseline(server, wait_for)
    yield server, baseline, witness


# -- raw clients ---------------------------------------------------------------


def ws_url(server):
    return server.url.replace("http", "ws") + "/socketio/?EIO=4&transport=websocket"


def raw_websocket(server):
    """A WebSocket joined to the namespace, speaking frames by hand."""
    sock = websocket.create_connection(ws_url(server), timeout=5)
    assert sock.recv().startswith('0{"sid":')
    sock.send("40%s," % NAMESPACE)
    assert sock.recv().startswith('40%s,{"sid":' % NAMESPACE)
    return sock


def close_raw(sock):
    sock.shutdown()  # websocket-client's close() leaks the socket once the peer closed


def masked_frame(payload, opcode=0x1, length=None, mask=b"\0\0\0\0"):
    """One client frame (mask key zero unless told); ``length`` may lie
    about the size."""
    if isinstance(payload, str):
        payload = payload.encode()
    length = len(payload) if length is None else length
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    if any(mask):
        payload = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return header + mask + payload


def read_until_closed(sock, timeout=5):
    """Frames until the server closes, or ``timeout`` s of silence; returns
    (texts, the close code or None)."""
    texts = []
    sock.settimeout(timeout)
    while True:
        try:
            opcode, data = sock.recv_data(control_frame=True)
        except (
            websocket.WebSocketConnectionClosedException,
            websocket.WebSocketTimeoutException,
            ConnectionError,
        ):
            return texts, None
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
            return texts, code
        if opcode == websocket.ABNF.OPCODE_TEXT:
            texts.append(data.decode())


def refusals(caplog):
    return [r for r in caplog.records if "refused input" in r.getMessage()]


def assert_no_tracebacks(caplog):
    assert not [r for r in caplog.records if r.exc_info], [
        r.getMessage() for r in caplog.records if r.exc_info
    ]


# -- WebSocket ---------------------------------------------------------------


def test_undecodable_frame_ends_its_session_at_once(watched, caplog):
    server, baseline, witness = watched
    with caplog.at_level(logging.WARNING, logger="tgext.socketio"):
        for _ in range(20):
            sock = raw_websocket(server)
            sock.send("x")
            texts, code = read_until_closed(sock)
            assert code == 1008
            close_raw(sock)
        # gone now, not at the ping timeout (6 s)
        deadline = time.monotonic() + 2
        while sessions(server) > baseline.sessions:
            assert time.monotonic() < deadline, "sessions left after 2 s"
            gevent.sleep(0.02)
        baseline.settle()
    witness.assert_healthy()
    assert len(refusals(caplog)) == 20
    assert "an unknown Engine.IO packet ('x')" in refusals(caplog)[0].getMessage()
    assert_no_tracebacks(caplog)


def test_oversized_message_is_refused_on_its_header(watched, caplog):
    server, baseline, witness = watched
    sock = raw_websocket(server)
    with caplog.at_level(logging.WARNING, logger="tgext.socketio"):
        # announce 5 MB, send the first 64 KB only: refused without the rest
        sock.sock.sendall(masked_frame(b"4" * 65536, length=5_000_000))
        texts, code = read_until_closed(sock)
    assert code == 1009
    close_raw(sock)
    baseline.settle()
    witness.assert_healthy(worst=0.5)
    assert "a message of over 5000000 bytes (the limit is 1000000)" in (
        refusals(caplog)[0].getMessage()
    )


def test_whole_five_megabyte_message_does_not_stall_the_others(watched):
    server, baseline, witness = watched
    sock = raw_websocket(server)
    payload = ('42%s,["add","%s",1]' % (NAMESPACE, "x" * 5_000_000)).encode()
    gevent.spawn(sock.sock.sendall, masked_frame(payload)).join(timeout=10)
    texts, code = read_until_closed(sock)
    assert code == 1009
    close_raw(sock)
    baseline.settle()
    witness.assert_healthy(worst=0.5)


def test_flood_of_events_shares_the_loop(watched):
    server, baseline, witness = watched
    sock = raw_websocket(server)
    frame = masked_frame(('42%s,["add",1,2]' % NAMESPACE).encode())
    rss_before = rss_mb()
    flood = frame * 50_000  # no ack asked: nothing comes back
    sock.sock.sendall(flood)
    sock.send('42%s,7["add",40,2]' % NAMESPACE)  # after the flood, in order
    texts = []
    sock.settimeout(30)
    while "43%s,7[42]" % NAMESPACE not in texts:
        texts.append(sock.recv())
        if texts[-1] == "2":
            sock.send("3")  # a slow machine may take longer than the ping timeout
    assert rss_mb() - rss_before < 50
    close_raw(sock)
    baseline.settle()
    witness.assert_healthy(worst=0.5)
    assert MESSAGES_PER_TURN <= 64


def test_client_outrunning_its_handlers_is_told_and_dropped(watched, caplog):
    server, baseline, witness = watched
    sock = raw_websocket(server)
    with caplog.at_level(logging.WARNING, logger="tgext.socketio"):
        # each on_slow takes 50 ms: the inbox fills past 256
        sock.sock.sendall(masked_frame(('42%s,["slow"]' % NAMESPACE).encode()) * 400)
        texts, _ = [], None
        sock.settimeout(10)
        while "41%s," % NAMESPACE not in texts:
            texts.append(sock.recv())
    assert texts[0].startswith('42%s,["error","too_many_events","More than 256' % NAMESPACE)
    close_raw(sock)
    baseline.settle()
    witness.assert_healthy()
    lines = [r for r in caplog.records if "socketio.max_queued_events" in r.getMessage()]
    assert len(lines) == 1


def test_client_that_does_not_read_is_dropped_with_bounded_memory(watched, caplog):
    server, baseline, witness = watched
    sock = raw_websocket(server)
    sock.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    rss_before = rss_mb()
    with caplog.at_level(logging.WARNING, logger="tgext.socketio"):
        sock.send('42%s,["send_many",20000,10000]' % NAMESPACE)  # 200 MB, never read
        baseline.wait_for(lambda: refusals(caplog), timeout=10)
    assert rss_mb() - rss_before < 50
    assert "more than 1000 packets waiting to be sent" in refusals(caplog)[0].getMessage()
    close_raw(sock)
    baseline.settle()
    witness.assert_healthy()


@pytest.mark.parametrize(
    "announced, attachments, reason",
    [
        (99999, 0, "99999 attachments announced (socketio.max_attachments is 10)"),
        (10, 3, "(socketio.max_attachment_bytes is 1000000)"),
    ],
)
def test_attachment_bomb_is_refused(watched, caplog, announced, attachments, reason):
    server, baseline, witness = watched
    sock = raw_websocket(server)
    rss_before = rss_mb()
    with caplog.at_level(logging.WARNING, logger="tgext.socketio"):
        sock.send('45%d-%s,["echo",{"_placeholder":true,"num":0}]' % (announced, NAMESPACE))
        for _ in range(attachments):
            try:
                sock.send_binary(b"\xff" * 900_000)
            except (BrokenPipeError, ConnectionResetError):
                break
        texts, code = read_until_closed(sock)
    assert code == 1008
    assert rss_mb() - rss_before < 50
    close_raw(sock)
    baseline.settle()
    witness.assert_healthy()
    assert reason in refusals(caplog)[0].getMessage()


@pytest.mark.parametrize("depth", [900, 100_000])
def test_deeply_nested_event_logs_one_line(watched, caplog, depth):
    server, baseline, witness = watched
    sock = raw_websocket(server)
    with caplog.at_level(logging.WARNING):
        sock.send('42%s,5["echo",%s%s]' % (NAMESPACE, "[" * depth, "]" * depth))
        texts, code = read_until_closed(sock, timeout=2)
        if code is None:
            # decoded (900 levels fit in Python's recursion limit, depending
            # on how deep the reader's stack already is); the echo comes back,
            # or if it cannot be encoded, an error, then an empty ack; the
            # client stays
            echoed = "43%s,5[%s%s]" % (NAMESPACE, "[" * depth, "]" * depth)
            if texts[0] != echoed:  # then Engine.IO pings ("2")
                assert texts[0].startswith('42%s,["error","internal_server_error"' % NAMESPACE)
                assert texts[1] == "43%s,5[]" % NAMESPACE
        else:  # too deep to decode: refused
            assert code == 1008
            assert depth == 900 or "RecursionError" in refusals(caplog)[0].getMessage()
    close_raw(sock)
    baseline.settle()
    witness.assert_healthy()
    assert_no_tracebacks(caplog)
    assert sum(len(r.getMessage()) for r in caplog.records) < 2000


# -- long-polling --------------------------------------------------------------


class PollingSession:
    """An Engine.IO long-polling session joined to the namespace, by hand."""

    def __init__(self, server):
        self.http = requests.Session()
        self.base = server.url + "/socketio/?EIO=4&transport=polling"
        opened = self.http.get(self.base, timeout=5).text
        self.url = self.base + "&sid=" + json.loads(opened[1:])["sid"]
        self.post("40%s," % NAMESPACE)
        assert self.http.get(self.url, timeout=5).text.startswith("40%s," % NAMESPACE)

    def post(self, body):
        """POST ``body``; the answer's status (the connection is let go)."""
        with self.http.post(
            self.url, data=body, timeout=5, headers={"Content-Type": "text/plain;charset=UTF-8"}
        ) as answer:
            return answer.status_code

    def close(self):
        self.http.close()


@pytest.mark.parametrize(
    "body, reason",
    [
        ("x", "an undecodable long-polling body"),
        ("\x1e".join(["42%s,[\"add\",1,2]" % NAMESPACE] * 1001), "Too many packets"),
        ("4" + "[" * 100_000, "RecursionError"),
        ("451-%s,[]" % NAMESPACE + "\x1e" + "b" + "A" * 10, None),
    ],
)
def test_refused_polling_body_is_answered_400_with_one_line(watched, caplog, body, reason):
    server, baseline, witness = watched
    session = PollingSession(server)
    with caplog.at_level(logging.WARNING, logger="tgext.socketio"):
        status = session.post(body)
    session.close()
    if reason is None:
        assert status in (200, 400)
    else:
        assert status == 400
        assert len(refusals(caplog)) == 1
        assert reason in refusals(caplog)[0].getMessage()
    assert_no_tracebacks(caplog)
    baseline.settle()
    witness.assert_healthy()


def test_many_refused_inputs_are_summarized(server, caplog, monkeypatch, wait_for):
    from tgext.socketio._serving import engineio_session as transport

    # a window the ten sessions fit in on a busy machine
    log = transport.RejectionLog(logging.getLogger("tgext.socketio.transport"), burst=3,
                                 window=2)
    monkeypatch.setattr(transport, "rejections", log)

    def refused():
        return [r.getMessage() for r in caplog.records if "refused input" in r.getMessage()]

    with caplog.at_level(logging.WARNING, logger="tgext.socketio"):
        for _ in range(10):
            sock = raw_websocket(server)
            sock.send("x")
            read_until_closed(sock)
            close_raw(sock)
        wait_for(lambda: len(refused()) >= 4, timeout=10)  # the summary, at the window's end
        gevent.sleep(0.1)  # nothing after it
    lines = refused()
    assert len(lines) == 4, lines
    assert "7 more in the last 2 s (7: an unknown Engine.IO packet" in lines[-1]


# -- generated input, and churn -----------------------------------------------
#
# The inputs come from hypothesis, derandomized (the same inputs on every run,
# no example database): Engine.IO and Socket.IO packets built from their
# parts with every part allowed to be wrong, JSON nested up to thousands deep,
# any text, any bytes. FUZZ_EXAMPLES examples of one to four inputs per
# transport: 300 by default (a few seconds), the whole corpus of 2,000 (over
# 10,000 inputs in all, half a minute per transport) with
# TGEXT_SOCKETIO_FUZZ_EXAMPLES=2000, or for one transport
# TGEXT_SOCKETIO_FUZZ_EXAMPLES=polling=2000 (websocket=2000): `make test` runs
# both whole in its run on the lowest versions (the other run has the
# release's tests), so the whole corpus runs once per change set.


def _fuzz_examples(setting, default=300):
    """``{transport: examples}`` from TGEXT_SOCKETIO_FUZZ_EXAMPLES: ``N``
    for both transports, or ``transport=N`` pairs separated by commas."""
    examples = {"websocket": default, "polling": default}
    for part in filter(None, setting.split(",")):
        transport, _, count = part.rpartition("=")
        if transport and transport not in examples:
            raise ValueError(
                "TGEXT_SOCKETIO_FUZZ_EXAMPLES: no transport %r (%s)"
                % (transport, " or ".join(examples))
            )
        for name in [transport] if transport else list(examples):
            examples[name] = int(count)
    return examples


FUZZ_EXAMPLES = _fuzz_examples(os.environ.get("TGEXT_SOCKETIO_FUZZ_EXAMPLES", ""))
INPUTS_PER_EXAMPLE = (1, 4)


def fuzz_settings(transport):
    return settings(
        max_examples=FUZZ_EXAMPLES[transport],
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=12,
)
event_names = st.sampled_from(["add", "echo", "nope", "", "x y"]) | st.text(
    max_size=6
)
socketio_data = st.one_of(
    st.builds(lambda name, args: json.dumps([name, *args]), event_names, st.lists(json_values, max_size=3)),
    json_values.map(json.dumps),
    st.text(max_size=30),
    st.integers(1, 5000).map(lambda depth: '["echo",%s%s]' % ("[" * depth, "]" * depth)),
    st.just('[{"_placeholder":true,"num":0}]'),
)
packets = st.builds(
    lambda eio, sio, attachments, namespace, ack, data: eio + sio + attachments + namespace + ack + data,
    st.sampled_from(list("0123456789b")),
    st.sampled_from(list("0123456789")) | st.just(""),
    st.sampled_from(["", "1-", "0-", "10-", "11-", "99999999999-", "-", "x-"]),
    st.sampled_from(["", NAMESPACE + ",", "/nope,", NAMESPACE, "/", ","]),
    st.sampled_from(["", "1", "007", "99999999999999999999"]),
    socketio_data,
)
text_inputs = st.one_of(packets, packets, packets, st.text(max_size=60))
inputs = st.one_of(text_inputs, st.binary(max_size=60))
input_lists = st.lists(inputs, min_size=INPUTS_PER_EXAMPLE[0], max_size=INPUTS_PER_EXAMPLE[1])


class Tally:
    """What the fuzz sent, for the assertion that it was enough."""

    def __init__(self):
        self.inputs = 0


@pytest.mark.timeout(300)  # the whole corpus, on a slow machine: minutes
def test_fuzz_websocket(watched):
    server, baseline, witness = watched
    tally = Tally()

    @fuzz_settings("websocket")
    @given(frames=input_lists)
    def send(frames):
        sock = raw_websocket(server)
        try:
            for frame in frames:
                tally.inputs += 1
                if isinstance(frame, bytes):
                    sock.send_binary(frame)
                else:
                    sock.send(frame)
        except (websocket.WebSocketException, OSError):
            pass  # closed by the server for an earlier input: refused, as it should
        finally:
            sock.shutdown()

    send()
    assert tally.inputs >= FUZZ_EXAMPLES["websocket"] * 2  # 1 to 4 inputs per example
    baseline.settle(timeout=30)
    witness.assert_healthy()


@pytest.mark.timeout(300)  # the whole corpus, on a slow machine: minutes
def test_fuzz_long_polling(watched):
    server, baseline, witness = watched
    tally = Tally()
    base = server.url + "/socketio/?EIO=4&transport=polling"
    http = requests.Session()

    @fuzz_settings("polling")
    @given(bodies=input_lists)
    def post(bodies):
        opened = http.get(base, timeout=5).text
        url = base + "&sid=" + json.loads(opened[1:])["sid"]
        posted = [("40%s," % NAMESPACE).encode()]
        for body in bodies:
            tally.inputs += 1
            posted.append(body if isinstance(body, bytes) else body.encode())
        # the join, then every input, each its own POST: a refused one ends
        # the session, and the rest meet "Invalid session" (also a 400)
        for body in posted:
            with http.post(url, data=body, timeout=5,
                           headers={"Content-Type": "text/plain;charset=UTF-8"}) as answer:
                assert answer.status_code in (200, 400)
        # a client that walks away without a goodbye, as a fuzzer does: the
        # session ends at the ping timeout, or now with a close packet
        with http.post(url, data=b"1", timeout=5) as answer:
            assert answer.status_code in (200, 400)

    post()
    http.close()
    assert tally.inputs >= FUZZ_EXAMPLES["polling"] * 2  # 1 to 4 inputs per example
    baseline.settle(timeout=30)
    witness.assert_healthy()


def websocket_comes_and_goes(server, number):
    sock = raw_websocket(server)
    sock.send('42%s,1["add",%d,1]' % (NAMESPACE, number))
    assert sock.recv() == "43%s,1[%d]" % (NAMESPACE, number + 1)
    if number % 2:
        sock.send("41%s," % NAMESPACE)
        sock.close()
    else:  # abrupt: the TCP connection is cut, no goodbye
        sock.sock.shutdown(socket.SHUT_RDWR)
    sock.shutdown()


def polling_comes_and_goes(server, number):
    session = PollingSession(server)
    assert session.post('42%s,1["add",%d,1]' % (NAMESPACE, number)) == 200
    answer = session.http.get(session.url, timeout=5).text
    # a slow machine may find a ping ("2") batched after it
    packets = [packet for packet in answer.split("\x1e") if packet != "2"]
    assert packets == ["43%s,1[%d]" % (NAMESPACE, number + 1)], answer
    if number % 2:
        session.post("1")  # goodbye; an abrupt client just stops polling
    session.close()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_churn_returns_to_baseline(watched, transport):
    """200 clients come and go, 20 at a time, half cleanly and half without a
    goodbye: sessions, fds and greenlets return to the baseline."""
    server, baseline, witness = watched
    come_and_go = {"websocket": websocket_comes_and_goes, "polling": polling_comes_and_goes}[
        transport
    ]
    for start in range(0, 200, 20):
        jobs = [gevent.spawn(come_and_go, server, start + number) for number in range(20)]
        gevent.joinall(jobs, raise_error=True)
    # a long-polling client gone without a goodbye ends at the ping timeout
    # (1 + 5 s here), a cut WebSocket at once; the burst's dispatcher workers
    # retire within two periods of IDLE_WORKER_SECONDS of light load
    baseline.settle(timeout=25)
    witness.assert_healthy()


def test_the_tables_a_wave_filled_are_rebuilt_small_after_it_left(server, wait_for):
    """Sessions, handlers and workers are kept in dicts and sets that keep
    the size of their fullest moment: the trim after a wave rebuilds them."""
    (engine,) = runtime_of(server.app_config).engines

    def tables():
        return {
            "sessions": engine.eio.sockets,
            "connections": engine._connections,
            "instances": engine._instances,
            "environ": engine.environ,
            "workers": engine._dispatcher._workers,
            "handlers": server._server._handlers,
        }

    clients = [raw_websocket(server) for _ in range(300)]
    for sock in clients:  # handlers that wait: a worker each
        sock.send('42%s,["slow"]' % NAMESPACE)
    wait_for(lambda: len(engine._dispatcher._workers) >= 100, timeout=10)
    peak = {name: sys.getsizeof(table) for name, table in tables().items()}
    for sock in clients:
        close_raw(sock)
    wait_for(lambda: sessions(server) == 0, timeout=20)
    wait_for(lambda: not engine._dispatcher._workers, timeout=20)  # retired
    memory.trimmer._trim_now(0)
    for name, table in tables().items():
        assert sys.getsizeof(table) < min(peak[name] / 10, 2048), name


def test_a_closed_session_is_freed_without_the_cycle_collector(server, wait_for):
    """What a session held (its Engine.IO socket, the Connection, the
    handshake's TG request) is freed when it closes, by reference
    counting alone: with thousands of clients leaving, waiting for the cycle
    collector kept hundreds of MB for minutes."""
    import weakref

    (engine,) = runtime_of(server.app_config).engines
    held = []
    gc.collect()
    gc.disable()
    try:
        for number in range(5):
            known = set(engine._connections)
            sock = raw_websocket(server)
            (sid,) = set(engine._connections) - known
            connection = engine._connections[sid]
            held += [
                weakref.ref(connection),
                weakref.ref(connection.request),
                weakref.ref(engine.eio.sockets[sid]),
            ]
            connection = None
            if number % 2:
                sock.send("41%s," % NAMESPACE)
                sock.close()
            close_raw(sock)
        wait_for(lambda: not [ref for ref in held if ref() is not None], timeout=10)
    finally:
        gc.enable()


def test_a_closed_session_is_not_held_by_the_ping_timeout_sweep(serve, wait_for):
    """python-engineio's sweep for ping timeouts walks a copy of the sessions
    table, ``ping_timeout / sessions`` seconds per session: a session that
    closed meanwhile (and with thousands leaving, all of them) stayed alive
    until the walk ended."""
    import weakref

    server = serve({"abuse": Abuse}, config={"socketio.ping_timeout": 6})
    (engine,) = runtime_of(server.app_config).engines
    known = set(engine.eio.sockets)
    sock = raw_websocket(server)
    (sid,) = set(engine.eio.sockets) - known
    session = engine.eio.sockets[sid]
    held = weakref.ref(session)
    checked = gevent.event.Event()

    def check_ping_timeout():  # the sweep reached it: its copy holds it
        checked.set()
        return type(held()).check_ping_timeout(held())

    session.check_ping_timeout = check_ping_timeout
    session = None
    assert checked.wait(timeout=20)
    gc.collect()
    gc.disable()
    try:
        close_raw(sock)  # the old sweep kept it 3 s more, waiting for the next
        wait_for(lambda: held() is None, timeout=1.5)
    finally:
        gc.enable()


def test_pings_come_every_ping_interval_and_stop_at_close(server, wait_for):
    """The server pings each session ``ping_interval`` after connect and after
    each pong, from a timer of the event loop (no greenlet per session), and
    the timer goes with the session."""
    (engine,) = runtime_of(server.app_config).engines
    known = set(engine.eio.sockets)
    sock = raw_websocket(server)
    (sid,) = set(engine.eio.sockets) - known
    session = engine.eio.sockets[sid]
    started = None
    for _number in range(3):
        assert sock.recv() == "2"
        if started is None:  # the first came one interval after the open
            started = time.monotonic()
        sock.send("3")
        sock.send("3")  # a second pong schedules no second ping
    elapsed = time.monotonic() - started
    assert 1.8 < elapsed < 3.5, elapsed  # two intervals of 1 s
    sock.settimeout(1.5)
    assert sock.recv() == "2"  # one ping per interval, not two
    sock.settimeout(0.5)
    with pytest.raises(websocket.WebSocketTimeoutException):
        sock.recv()
    sock.send("3")
    wait_for(lambda: session._ping_timer is not None)
    timer = session._ping_timer
    assert timer is not None and timer.active
    session = None
    close_raw(sock)
    wait_for(lambda: not timer.active)
