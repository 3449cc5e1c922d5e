"""``workers = N`` in ``[server:main]``: N serving processes on one port
behind the runner's router, clients kept on the process holding their
session, everything else across processes through the suite's Redis."""
import collections
import contextlib
import itertools
import os
import signal
import time

import gevent
import gevent.event
import gevent.pool
import pytest
import requests
import socketio

from tgext.socketio.testing import disconnect_client

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


def process_tree(pid):
    """``{pid: parent pid}`` of the live (not zombie) descendants of ``pid``."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:  # it just exited
                continue
            if fields[0] != "Z":
                parents[int(entry)] = int(fields[1])
    tree = {}
    found = [pid]
    while found:
        parent = found.pop()
        for child, its_parent in parents.items():
            if its_parent == parent:
                tree[child] = parent
                found.append(child)
    return tree


@pytest.fixture
def watched_client(client_factory):
    """Connect a client that reconnects by itself; returns it and the list of
    its connects and disconnects on ``/probe``."""
    websockets = []

    def connect(server, transports):
        client = client_factory(socketio.Client(reconnection_delay=0.2,
                                                reconnection_delay_max=0.5))
        events = []

        def connected():
            events.append("connect")
            websockets.append((client, getattr(client.eio, "ws", None)))

        client.on("connect", connected, namespace="/probe")
        client.on("disconnect", lambda *reason: events.append("disconnect"),
                  namespace="/probe")
        client.connect(server.url, namespaces=["/probe"], socketio_path="socketio",
                       transports=transports, wait_timeout=10)
        return client, events

    yield connect
    for client, websocket in websockets:
        if websocket is not None and websocket is not getattr(client.eio, "ws", None):
            # a WebSocket the server closed before the client reconnected:
            # websocket-client's close() leaves its socket open
            websocket.shutdown()


def whoami(client):
    return client.call("whoami", namespace="/probe", timeout=10)


def wait_until(predicate, timeout, what):
    with gevent.Timeout(timeout, AssertionError(what)):
        while not predicate():
            gevent.sleep(0.05)


def test_a_killed_worker_is_replaced_and_the_other_keeps_its_clients(
    gearbox, client_factory, watched_client, redis_server  # noqa: F811
):
    server = gearbox(server_extra="workers = 2",  # tags a-w0., a-w1., then a-w2.
                     extra=over_redis(redis_server, "replaced") + "\nsocketio.node_id = a")
    started = server.wait_for_log_match(r"with 2 worker processes \(pids (\d+) (\d+)\)")
    by_pid = collections.defaultdict(list)
    for transports in (["websocket"], ["websocket"], ["polling"], ["polling"]) * 3:
        client, events = watched_client(server, transports)
        by_pid[whoami(client)].append((client, events))
        if len(by_pid) == 2 and all(
            {client.transport() for client, _events in clients} == {"websocket", "polling"}
            for clients in by_pid.values()
        ):
            break  # each worker has a client of each transport
    assert set(by_pid) == {int(started.group(1)), int(started.group(2))}
    victim, survivor = sorted(by_pid, key=lambda pid: pid != int(started.group(1)))
    stayer = by_pid[survivor][0][0]
    stayer_sid = stayer.get_sid("/probe")
    polling_sid = next(client.eio.sid for client, _events in by_pid[victim]
                       if client.transport() == "polling")
    assert polling_sid.startswith("a-w")

    os.kill(victim, signal.SIGKILL)
    died = server.wait_for_log_match(
        r"worker process %d \(a-w[01]\.\) was killed by signal 9 \(SIGKILL\); "
        r"starting another" % victim)
    ready = server.wait_for_log_match(r"worker process (\d+) \(a-w2\.\) is ready",
                                      after=died)
    replacement = int(ready.group(1))
    # the replacement is forked by the zygote, a child of the server's process
    tree = process_tree(server.process.pid)
    assert tree[tree[replacement]] == server.process.pid
    assert victim not in tree and survivor in tree

    # the victim's clients come back, to a live worker; its sessions are unknown
    for client, events in by_pid[victim]:
        wait_until(lambda events=events: events.count("connect") == 2, 15,
                   "a client of the dead worker did not reconnect: %s" % events)
        assert whoami(client) in (survivor, replacement)
    answer = requests.get(server.url + "/socketio/", timeout=5, params={
        "EIO": "4", "transport": "polling", "sid": polling_sid})
    assert answer.status_code == 400
    # the other worker's clients saw nothing
    for client, events in by_pid[survivor]:
        assert events == ["connect"]
        assert client.call("ping", {"type": "ping"}, namespace="/probe", timeout=10) == "ack"
    assert stayer.get_sid("/probe") == stayer_sid
    # new clients are served by both live workers
    served = {whoami(connect_probe(client_factory, server, ["polling"])) for _ in range(4)}
    assert served == {survivor, replacement}
    assert server.process.poll() is None


def test_workers_dying_at_start_up_stop_the_server_and_say_so(gearbox, redis_server):  # noqa: F811
    server = gearbox(server_extra="workers = 2", app="tests.apps.failing_worker_app:make_app",
                     extra=over_redis(redis_server, "crashing"))
    # a failure for a supervisor (systemd's Restart=on-failure: docs/serving.rst)
    assert server.wait_for_exit(timeout=20) != 0
    log = server.log()
    assert "exited with status 3 before it was ready" in log
    assert ("5 worker processes in a row exited before they were ready (the last, "
            "worker process ") in log
    assert "WorkerDiedError" in log
    assert "serving Socket.IO" not in log


def test_a_dead_zygote_stops_the_server_and_says_so(gearbox, redis_server):  # noqa: F811
    """Without the process that forks them, no worker could be replaced."""
    server = gearbox(server_extra="workers = 2", extra=over_redis(redis_server, "zygote"))
    server.wait_for_log("with 2 worker processes")
    tree = process_tree(server.process.pid)
    zygote = next(pid for pid, parent in tree.items() if parent == server.process.pid)
    os.kill(zygote, signal.SIGKILL)
    assert server.wait_for_exit(timeout=15) != 0
    assert ("the process that starts the worker processes (pid %d) exited, so no "
            "worker process could be replaced: the server stopped" % zygote) in server.log()
    wait_until(lambda: not set(process_tree(1)) & set(tree), 10,
               "worker processes left behind")


@contextlib.contextmanager
def visitors_every_50_ms(server, *transports):
    """Connect a new client every 50 ms, each with the next of
    ``transports`` (lists), ask it which process serves it and disconnect
    it; yields ``(served, failures)``: the pids that served, and the
    visits that failed, for as long as the block runs. A visitor that a
    stopping process disconnects (cleanly) before it answers, or before its
    namespace joined, connects once more, as a client would reconnect; a
    refused connect is a failure."""
    served, failures = [], []

    def visit(number):
        chosen = transports[number % len(transports)]
        for _attempt in range(2):
            client = socketio.Client(reconnection=False)
            cut, refused = gevent.event.Event(), []
            client.on("disconnect", lambda *reason, cut=cut: cut.set(), namespace="/probe")
            client.on("connect_error", lambda *why, refused=refused: refused.append(why),
                      namespace="/probe")
            try:
                client.connect(server.url, namespaces=["/probe"], socketio_path="socketio",
                               transports=chosen, wait_timeout=10)
                asking = gevent.spawn(whoami, client)
                gevent.wait([asking, cut], count=1, timeout=10)
                if asking.ready():
                    served.append(asking.get())
                    return
                asking.kill()
                if not cut.is_set():
                    failures.append((number, chosen[0], "no answer in 10 s"))
                    return
            except socketio.exceptions.ConnectionError as error:
                # python-socketio's words (5.12's, then later ones) for an
                # Engine.IO session that opened, then ended before the
                # namespace joined, unless the namespace refused it
                if refused or str(error) not in (
                    "One or more namespaces failed to connect",
                    "Unexpected connection error",
                ):
                    failures.append((number, chosen[0], repr(error), refused))
                    return
            except Exception as error:
                failures.append((number, chosen[0], repr(error)))
                return
            finally:
                disconnect_client(client)
        failures.append((number, chosen[0], "disconnected twice before an answer"))

    def visit_every_50_ms():
        for number in itertools.count():
            visitors.spawn(visit, number)
            if done.wait(0.05):
                return

    visitors = gevent.pool.Group()
    done = gevent.event.Event()
    loop = gevent.spawn(visit_every_50_ms)
    try:
        yield served, failures
    finally:
        done.set()
        loop.get(timeout=5)
        visitors.join(timeout=20, raise_error=True)


def test_sighup_restarts_the_workers_one_by_one_refusing_no_client(
    gearbox, watched_client, redis_server  # noqa: F811
):
    server = gearbox(server_extra="workers = 2",
                     extra=over_redis(redis_server, "rolling"))
    started = server.wait_for_log_match(r"with 2 worker processes \(pids (\d+) (\d+)\)")
    old_pids = {int(started.group(1)), int(started.group(2))}
    existing, existing_events = watched_client(server, ["websocket"])
    assert whoami(existing) in old_pids
    with visitors_every_50_ms(server, ["websocket"], ["polling"]) as (served, failures):
        gevent.sleep(0.3)
        os.kill(server.process.pid, signal.SIGHUP)
        rolled = server.wait_for_log_match(
            r"rolling restart done: worker processes (\d+) (\d+)", timeout=20)
        gevent.sleep(0.3)
    assert not failures, failures
    new_pids = {int(rolled.group(1)), int(rolled.group(2))}
    assert not new_pids & old_pids
    assert set(served) == old_pids | new_pids  # served throughout
    assert set(process_tree(server.process.pid)) & (old_pids | new_pids) == new_pids
    # the existing client was disconnected (cleanly) and came back (twice, if it
    # came back to the other old worker first)
    wait_until(lambda: "disconnect" in existing_events and existing_events[-1] == "connect",
               10, "the existing client did not reconnect: %s" % existing_events)
    assert existing_events[:2] == ["connect", "disconnect"]
    assert whoami(existing) in new_pids
    assert server.process.poll() is None


def test_gunicorn_sighup_replaces_its_workers_refusing_no_client(
    gunicorn, watched_client, redis_server  # noqa: F811
):
    """gunicorn's own rolling restart (SIGHUP: new workers, then the old ones
    stopped gracefully) with the package's worker class, as docs/production
    says: no client refused, the old workers' clients reconnect to new ones."""
    from .test_gunicorn import wait_until_served

    def two_workers(ini, port):
        return gunicorn_command(ini, port) + ["-w", "2"]

    server = gunicorn(extra=over_redis(redis_server, "grolling")
                      + "\nsocketio.transports = websocket", command=two_workers)
    wait_until_served(server, "/socketio/page")

    def workers():
        return set(process_tree(server.process.pid))

    wait_until(lambda: len(workers()) == 2, 20, "gunicorn did not start 2 workers")
    old_pids = workers()
    existing, existing_events = watched_client(server, ["websocket"])
    assert whoami(existing) in old_pids
    with visitors_every_50_ms(server, ["websocket"]) as (served, failures):
        gevent.sleep(0.3)
        os.kill(server.process.pid, signal.SIGHUP)
        wait_until(lambda: len(workers()) == 2 and not workers() & old_pids, 20,
                   "the old workers are still there: %s" % server.log())
        gevent.sleep(0.3)
    assert not failures, failures
    new_pids = workers()
    assert set(served) & old_pids and set(served) & new_pids  # served throughout
    assert set(served) <= old_pids | new_pids
    wait_until(lambda: "disconnect" in existing_events and existing_events[-1] == "connect",
               10, "the existing client did not reconnect: %s" % existing_events)
    assert whoami(existing) in new_pids
    assert server.process.poll() is None


def test_sigterm_ends_the_server_and_its_worker_processes(
    gearbox, client_factory, redis_server  # noqa: F811
):
    server = gearbox(server_extra="workers = 2",
                     extra=over_redis(redis_server, "stopped"))
    server.wait_for_log("with 2 worker processes")
    client = connect_probe(client_factory, server, ["websocket"])
    assert client.call("ping", {"type": "ping"}, namespace="/probe", timeout=10) == "ack"
    descendants = process_tree(server.process.pid)
    assert len(descendants) == 3  # the zygote and the 2 workers
    started = time.monotonic()
    os.kill(server.process.pid, signal.SIGTERM)  # the parent alone
    assert server.wait_for_exit(timeout=15) == 0
    assert time.monotonic() - started < 5
    # reaped, not left to init: none is even a zombie
    wait_until(lambda: not any(os.path.exists("/proc/%d" % pid) for pid in descendants),
               5, "processes left behind")
    assert "WorkerDiedError" not in server.log()


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


def test_sighup_lets_the_clients_of_a_restarted_worker_recover_their_state(
    gearbox, client_factory, redis_server  # noqa: F811
):
    """With connection state recovery, a client of a worker that a rolling
    restart stops comes back to another with its id and its rooms."""
    from .jsclient import JsClient

    server = gearbox(server_extra="workers = 2",
                     extra=over_redis(redis_server, "rolling-recovery")
                     + "\nsocketio.connection_state_recovery = 10")
    server.wait_for_log("with 2 worker processes")
    member = JsClient(server.url + "/probe", ["websocket"], "/socketio", reconnection=True)
    try:
        first = member.wait_for_type("connect", timeout=10)
        assert member.call("join", "room", timeout=10) == [first["id"]]
        sender = connect_probe(client_factory, server, ["websocket"])
        sender.emit("to_room", ("room", "before"), namespace="/probe")
        member.wait(lambda message: message["type"] == "event", 10)
        os.kill(server.process.pid, signal.SIGHUP)
        member.wait(lambda message: message["type"] == "disconnect", 20)
        back = member.wait_for_type("connect", 10)
        assert (back["recovered"], back["id"]) == (True, first["id"]), back
    finally:
        member.close()
