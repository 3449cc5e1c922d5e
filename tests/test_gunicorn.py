"""gunicorn (from PyPI) with the worker class the package ships, started as
docs/serving.rst says: ``gunicorn --paste <ini> -k tgext.socketio.gunicorn.SocketIOWorker``
on a free port, stopped by PID; real python-socketio and socket.io-client
clients over every transport, both resources, pages beside."""
import os
import sys

import pytest
import requests

from .test_server_runner import GearboxServer
from .test_wire_js import FIRST_TRANSPORT, LAST_TRANSPORT, TRANSPORTS, JsClient

GUNICORN = os.path.join(os.path.dirname(sys.executable), "gunicorn")
WORKER = "tgext.socketio.gunicorn.SocketIOWorker"


def gunicorn_command(ini, port):
    return [GUNICORN, "--paste", str(ini), "-b", "127.0.0.1:%d" % port, "-k", WORKER,
            "--graceful-timeout", "5"]


@pytest.fixture
def gunicorn(tmp_path):
    servers = []

    def start(**kwargs):
        kwargs.setdefault("command", gunicorn_command)
        server = GearboxServer(tmp_path, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def probe_client(client_factory, server, transport, resource):
    import socketio

    client = client_factory(socketio.Client())
    client.connect(server.url, namespaces=["/probe"], socketio_path=resource,
                   transports=["polling", "websocket"] if transport == "upgrade"
                   else [transport], wait_timeout=10)
    return client


@pytest.mark.parametrize("resource, page", [("socketio", "/socketio/page"),
                                            ("socket.io", "/socket.io/page")])
def test_gunicorn_serves_pages_and_every_transport(gunicorn, client_factory, resource,
                                                   page):
    server = gunicorn(resource=resource)
    server.wait_for_log("Booting worker")
    wait_until_served(server, page)
    assert requests.get(server.url + page, timeout=5).text == "page served"
    for transport in ("websocket", "polling", "upgrade"):
        client = probe_client(client_factory, server, transport, resource)
        assert client.call("ping", {"type": "ping"}, namespace="/probe", timeout=5) == "ack"
        answer = client.call("inspect", transport, namespace="/probe", timeout=5)
        assert answer["greenlet_local"] is True
    # only the resource is upgraded to WebSocket
    other = requests.get(server.url + "/socketio_elsewhere", timeout=5,
                         headers={"Connection": "Upgrade", "Upgrade": "websocket",
                                  "Sec-WebSocket-Version": "13",
                                  "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert other.status_code != 101


@pytest.mark.parametrize("transport", list(TRANSPORTS))
def test_gunicorn_serves_socket_io_client(gunicorn, transport):
    server = gunicorn()
    server.wait_for_log("Booting worker")
    wait_until_served(server, "/socketio/page")
    client = JsClient(server.url + "/probe", TRANSPORTS[transport], "/socketio")
    try:
        opened = client.wait(lambda m: m["type"] in ("open", "connect_error"))
        assert opened == {"type": "open", "transport": FIRST_TRANSPORT[transport]}
        client.wait_for_type("connect")
        assert client.call("ping", {"type": "ping"}) == ["ack"]
        if transport == "upgrade":
            client.wait_for_type("upgrade", timeout=10, seen=True)
        assert client.transport() == LAST_TRANSPORT[transport]
    finally:
        client.close()


def test_gunicorn_worker_stops_on_a_bad_option_naming_the_key(gunicorn):
    server = gunicorn(extra="socketio.ping_timeout = never")
    assert server.wait_for_exit() != 0
    assert ("socketio.ping_timeout = 'never' is not a positive number of seconds"
            in server.log())


def test_gunicorn_worker_stops_on_a_misspelled_server_key_naming_it(gunicorn):
    server = gunicorn(server_extra="socketio_resourse = live")
    assert server.wait_for_exit() != 0
    assert ("socketio_resourse in [server:main] of your .ini file "
            "is not a tgext.socketio setting; did you mean socketio_resource?"
            in server.log())


def test_gunicorn_worker_applies_the_server_timeouts(gunicorn):
    import socket
    import time

    server = gunicorn(server_extra="header_timeout = 1")
    server.wait_for_log("Booting worker")
    requests.get(server.url + "/socketio/page", timeout=10)  # the worker is up
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    started = time.monotonic()
    assert sock.recv(100) == b""  # nothing sent: closed after header_timeout
    assert 0.9 < time.monotonic() - started < 3
    sock.close()


def test_gunicorn_worker_stops_without_redis_py(gunicorn, tmp_path, redis_server):
    shadow = tmp_path / "no-redis-py"
    (shadow / "redis").mkdir(parents=True)
    (shadow / "redis" / "__init__.py").write_text(
        "raise ImportError('No module named redis')\n")
    server = gunicorn(extra="socketio.message_queue = %s" % redis_server,
                      pythonpath=[shadow])
    assert server.wait_for_exit() != 0
    assert ("socketio.message_queue = %s needs redis-py; run 'pip install "
            "tgext.socketio[redis]'." % redis_server) in server.log()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_gunicorn_stops_at_once_closing_every_client(gunicorn, client_factory, transport):
    import gevent

    server = gunicorn()
    server.wait_for_log("Booting worker")
    wait_until_served(server, "/socketio/page")
    client = probe_client(client_factory, server, transport, "socketio")
    reasons = []
    client.on("disconnect", lambda *reason: reasons.append(reason), namespace="/probe")
    server.stop()
    with gevent.Timeout(10, AssertionError("no disconnect: %s" % server.log())):
        while not reasons:
            gevent.sleep(0.05)
    assert "Worker exiting" in server.log()
    assert "Worker graceful timeout" not in server.log()


def wait_until_served(server, path, timeout=20):
    import time

    import gevent

    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(server.url + path, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if server.process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError("gunicorn does not serve %s:\n%s" % (path, server.log()))
        gevent.sleep(0.1)





def clients_on_each_worker(server, connect, workers, per_worker):
    """``{pid: [client, ...]}`` with ``per_worker`` clients on each of the
    ``workers`` gunicorn workers. They share one listening socket and the
    kernel may hand every connection to the same one, so the other workers
    are stopped (SIGSTOP) while a worker's clients connect. ``connect()``
    returns a connected client and the pid that serves it."""
    import signal
    import time

    from .test_workers import process_tree

    deadline = time.monotonic() + 20
    while len(pids := sorted(process_tree(server.process.pid))) < workers:
        assert time.monotonic() < deadline, "gunicorn runs %s: %s" % (pids, server.log())
        time.sleep(0.1)
    placed = {}
    for pid in pids:
        others = [other for other in pids if other != pid]
        for other in others:
            os.kill(other, signal.SIGSTOP)
        try:
            for _ in range(per_worker):
                client, serving = connect()
                placed.setdefault(serving, []).append(client)
        finally:
            for other in others:
                os.kill(other, signal.SIGCONT)
    assert sorted(placed) == pids, (placed, pids)
    return placed
