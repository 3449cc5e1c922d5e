"""``workers = N`` in ``[server:main]``: N serving processes on one port
behind the runner's router, clients kept on the process holding their
session, everything else across processes through the suite's Redis."""
import collections

import gevent
import pytest
import socketio

from .test_gunicorn import gunicorn, gunicorn_command  # noqa: F401 (fixture)
from .test_server_runner import gearbox  # noqa: F401 (fixture)


def over_redis(redis_url, channel):
    """``[app:main]`` lines sending emits and pub/sub through ``redis_url``."""
    return (
        "socketio.message_queue = %s\nsocketio.channel = %s\n"
        "anypubsub.backend = redis\nanypubsub.host = %s" % (redis_url, channel, redis_url)
    )


def connect_probe(client_factory, server, transports):
    client = client_factory(socketio.Client(reconnection=False))
    client.connect(server.url, namespaces=["/probe"], socketio_path="socketio",
                   transports=transports, wait_timeout=10)
    return client


def test_two_workers_keep_polling_and_websocket_clients_and_share_broadcasts(
    gearbox, client_factory, redis_server  # noqa: F811
):
    server = gearbox(server_extra="workers = 2",
                     extra=over_redis(redis_server, "workers"))
    server.wait_for_log("with 2 worker processes")
    clients = [connect_probe(client_factory, server, ["polling"]) for _ in range(50)]
    clients += [connect_probe(client_factory, server, ["websocket"]) for _ in range(50)]
    pids = collections.Counter(
        client.call("whoami", namespace="/probe", timeout=10) for client in clients)
    assert len(pids) == 2, pids  # both processes serve
    heard = collections.Counter()
    for number, client in enumerate(clients):
        client.on("heard", lambda text, number=number: heard.update([(number, text)]),
                  namespace="/probe")
    clients[0].emit("shout", "to everyone", namespace="/probe")
    with gevent.Timeout(10, AssertionError("%d of 100 heard" % len(heard))):
        while len(heard) < 100:
            gevent.sleep(0.05)
    gevent.sleep(0.5)
    assert heard == collections.Counter((number, "to everyone") for number in range(100))
    # long-polling kept working on its process: every session is still valid
    for client in clients[:50]:
        assert client.call("ping", {"type": "ping"}, namespace="/probe", timeout=10) == "ack"
    assert "Invalid session" not in server.log()


def test_workers_without_a_message_queue_are_refused_naming_the_keys(gearbox):  # noqa: F811
    server = gearbox(server_extra="workers = 2")
    assert server.wait_for_exit() != 0
    assert ("workers = 2 in [server:main] runs 2 processes, and a client's emits, "
            "broadcasts and rooms reach the clients of the other processes only "
            "through a message queue: set socketio.message_queue") in server.log()


@pytest.mark.parametrize("value", ["0", "many"])
def test_a_bad_workers_value_is_refused(gearbox, value):  # noqa: F811
    server = gearbox(server_extra="workers = %s" % value)
    assert server.wait_for_exit() != 0
    assert "workers = %r is not a number of processes such as 2" % value in server.log()


def test_gunicorn_with_two_workers_and_polling_is_refused(gunicorn, redis_server):  # noqa: F811
    def two_workers(ini, port):
        return gunicorn_command(ini, port) + ["-w", "2"]

    server = gunicorn(extra="socketio.message_queue = %s\nanypubsub.backend = redis\n"
                      "anypubsub.host = %s" % (redis_server, redis_server),
                      command=two_workers)
    assert server.wait_for_exit() != 0
    log = server.log()
    assert "gunicorn -w 2 runs 2 processes without sticky routing" in log
    assert "socketio.transports = websocket" in log and "workers = 2" in log


def test_gunicorn_with_two_workers_and_websocket_only_serves(
    gunicorn, client_factory, redis_server  # noqa: F811
):
    def two_workers(ini, port):
        return gunicorn_command(ini, port) + ["-w", "2"]

    server = gunicorn(extra="socketio.message_queue = %s\nsocketio.transports = websocket\n"
                      "anypubsub.backend = redis\nanypubsub.host = %s"
                      % (redis_server, redis_server), command=two_workers)
    server.wait_for_log("Booting worker")
    from .test_gunicorn import wait_until_served

    wait_until_served(server, "/socketio/page")
    clients = [connect_probe(client_factory, server, ["websocket"]) for _ in range(10)]
    assert all(client.call("ping", {"type": "ping"}, namespace="/probe", timeout=10)
               == "ack" for client in clients)


def test_workers_serving_pubsub_on_the_memory_backend_are_refused(gearbox, redis_server):  # noqa: F811
    server = gearbox(server_extra="workers = 2",
                     extra="socketio.message_queue = %s" % redis_server)
    assert server.wait_for_exit() != 0
    assert ("PubSubTGNamespace channels reach the subscribers of the other processes "
            "only through Redis: set anypubsub.backend = redis") in server.log()


def test_a_dead_worker_stops_the_server_and_says_so(gearbox, redis_server):  # noqa: F811
    import os
    import signal

    server = gearbox(server_extra="workers = 2",
                     extra="socketio.message_queue = %s\nanypubsub.backend = redis\n"
                     "anypubsub.host = %s" % (redis_server, redis_server))
    pids = server.wait_for_log_match(r"with 2 worker processes \(pids (\d+) (\d+)\)")
    os.kill(int(pids.group(1)), signal.SIGKILL)
    # a failure for a supervisor (systemd's Restart=on-failure: docs/serving.rst)
    assert server.wait_for_exit(timeout=15) != 0
    assert "worker process %s exited; stopping the server" % pids.group(1) in server.log()


def test_the_router_closes_connections_that_send_no_request_line(
    gearbox, client_factory, redis_server  # noqa: F811
):
    """It used to hand them to a worker after 10 s, which kept them."""
    import socket
    import time

    server = gearbox(server_extra="workers = 2\nheader_timeout = 1",
                     extra=over_redis(redis_server, "routed"))
    server.wait_for_log("with 2 worker processes")
    silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(50)]
    started = time.monotonic()
    for sock in silent:
        sock.settimeout(5)
        assert sock.recv(100) == b""  # closed, with nothing said
        sock.close()
    assert time.monotonic() - started < 3
    client = connect_probe(client_factory, server, ["polling"])
    assert client.call("ping", {"type": "ping"}, namespace="/probe", timeout=10) == "ack"
