"""What clients can make the server log: a few lines per connection, a
disconnect for repeated offences, names from the wire on one line."""

import logging

import gevent
import pytest
import websocket

from tgext.socketio import BaseNamespace
from tgext.socketio._serving import clientlog
from tgext.socketio.testing import disconnect_client

NAMESPACE = "/logged"


class Logged(BaseNamespace):
    def on_add(self, a, b):
        return a + b


@pytest.fixture(autouse=True)
def fresh_budgets(monkeypatch):
    """Each test starts with the whole process-wide budget to spend."""
    monkeypatch.setattr(
        clientlog,
        "client_lines",
        clientlog.BurstLog(clientlog.log, clientlog.PROCESS_LINES, clientlog.WINDOW, "%d %g %s"),
    )


@pytest.fixture
def server(serve):
    return serve({"logged": Logged}, config={"socketio.ping_interval": 5})


def ws_url(server):
    return server.url.replace("http", "ws") + "/socketio/?EIO=4&transport=websocket"


def open_raw(server):
    sock = websocket.create_connection(ws_url(server), timeout=5)
    assert sock.recv().startswith("0{")
    return sock


def package_lines(caplog):
    return [r for r in caplog.records if r.name.startswith("tgext.socketio")]


def send_until_cut(sock, frame, count):
    """Send ``frame`` up to ``count`` times; how many went before the server cut."""
    sent = 0
    try:
        for sent in range(1, count + 1):
            sock.send(frame)
            if sent % 1000 == 0:
                gevent.sleep(0)
    except (websocket.WebSocketException, ConnectionError, OSError):
        return sent - 1
    # the server may cut after the last frame was written: read until it does
    sock.settimeout(5)
    try:
        while sock.recv():
            pass
    except (websocket.WebSocketException, ConnectionError, OSError):
        pass
    return sent


@pytest.mark.parametrize("namespace", [NAMESPACE, "/nowhere"])
def test_events_to_a_namespace_not_joined_log_a_few_lines_then_cut(
    server, caplog, wait_for, namespace
):
    witness = server.connect(namespaces=[NAMESPACE])
    sock = open_raw(server)
    with caplog.at_level(logging.WARNING, logger="tgext.socketio"):
        send_until_cut(sock, '42%s,["add",1,2]' % namespace, 50000)
        sock.shutdown()
        gevent.sleep(0.2)
    lines = [r.getMessage() for r in package_lines(caplog)]
    ignored = [line for line in lines if "not connected to namespace" in line]
    assert 1 <= len(ignored) <= clientlog.LINES_PER_CONNECTION, lines
    cut = [line for line in lines if "offences in a minute" in line]
    assert len(cut) == 1, lines
    assert len(lines) <= clientlog.LINES_PER_CONNECTION + 2, lines
    # the others were never disturbed
    assert witness.call("add", (2, 3), namespace=NAMESPACE, timeout=5) == 5
    disconnect_client(witness)


def test_a_namespace_name_with_newlines_is_logged_on_one_line(server, caplog, wait_for):
    forged = "/x\n2026-12-06 12:00:00.000 ERROR [tgext.socketio.auth] FORGED admin login\n"
    sock = open_raw(server)
    with caplog.at_level(logging.WARNING, logger="tgext.socketio"):
        sock.send("42%s,[\"x\"]" % forged)
        sock.send("40%s," % forged)
        wait_for(lambda: sum("FORGED" in r.getMessage() for r in package_lines(caplog)) >= 2)
        gevent.sleep(0.1)  # nothing more
        sock.shutdown()
    lines = [r.getMessage() for r in package_lines(caplog)]
    about_it = [line for line in lines if "FORGED" in line]
    assert len(about_it) == 2, lines
    for line in about_it:
        assert "\n" not in line and "\\n2026-12-06" in line


def test_an_error_repeated_to_a_joined_client_is_logged_a_few_times_only(server, caplog):
    client = server.connect(namespaces=[NAMESPACE])
    errors = []
    client.on("error", lambda *args: errors.append(args), namespace=NAMESPACE)
    with caplog.at_level(logging.WARNING, logger="tgext.socketio"):
        for _ in range(200):
            client.emit("no such thing", namespace=NAMESPACE)
        assert client.call("add", (1, 1), namespace=NAMESPACE, timeout=5) == 2
        disconnect_client(client)
        gevent.sleep(0.2)
    assert len(errors) == 200  # every client still gets every error
    lines = [r.getMessage() for r in package_lines(caplog)]
    assert len([line for line in lines if "error no_such_method" in line]) == 5, lines
    # what was held back is told once, when the client leaves
    assert [line for line in lines if "195 more warnings caused by" in line], lines


def test_all_clients_together_log_at_most_the_process_budget(
    server, caplog, monkeypatch, wait_for
):
    # a window the ten clients fit in on a busy machine
    budget = clientlog.BurstLog(
        clientlog.log, 12, 2, "client-caused warnings: %d more in the last %g s, not logged (%s)"
    )
    monkeypatch.setattr(clientlog, "client_lines", budget)
    with caplog.at_level(logging.WARNING, logger="tgext.socketio"):
        for _ in range(10):
            sock = open_raw(server)
            for _ in range(3):
                sock.send('42/nowhere,["x"]')
            gevent.sleep(0.02)
            sock.shutdown()
        # the window ends: its summary
        wait_for(lambda: len(package_lines(caplog)) >= 13, timeout=10)
        gevent.sleep(0.1)  # nothing after it
    lines = [r.getMessage() for r in package_lines(caplog)]
    assert len(lines) == 13, lines
    assert "client-caused warnings: 18 more in the last 2 s" in lines[-1]


def test_failed_engine_io_requests_log_within_the_process_budget(server, caplog, monkeypatch):
    """A request python-engineio fails on (a POST to a session closing
    meanwhile, say) is a 400 and a line, within the budget of client-caused
    lines: a client repeating it cannot flood the log."""
    import requests

    from tgext.socketio._engine.runtime import runtime_of

    (engine,) = runtime_of(server.app_config).engines

    def failing(environ, start_response):
        raise KeyError("Session is disconnected")

    monkeypatch.setattr(engine, "handle_request", failing)
    url = server.url + "/socketio/?EIO=4&transport=polling&sid=gone"
    with caplog.at_level(logging.WARNING, logger="tgext.socketio"):
        with requests.Session() as http:
            for _ in range(clientlog.PROCESS_LINES + 50):
                assert http.post(url, data=b"1", timeout=5).status_code == 400
    failed = [r for r in package_lines(caplog) if "Engine.IO request" in r.getMessage()]
    assert len(failed) == clientlog.PROCESS_LINES
