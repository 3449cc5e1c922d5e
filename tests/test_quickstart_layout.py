"""An app in the layout ``gearbox quickstart`` makes (``tests/apps/qsapp``: the
config names the package, TurboGears finds ``RootController`` itself) under
``gearbox serve``, ``workers = 2`` and gunicorn: served, and every start-up
check that needs the namespaces run before the first request; misspelled
settings and a misplaced controller refused naming the key."""
import collections
import os

import gevent
import pytest
import requests
import socketio

from .test_example_page import browser  # noqa: F401 (fixture)
from .test_gunicorn import gunicorn, gunicorn_command, wait_until_served  # noqa: F401
from .test_server_runner import gearbox  # noqa: F401 (fixture)

HERE = os.path.dirname(os.path.abspath(__file__))
APPS = os.path.join(HERE, "apps")
QUICKSTART = dict(app="qsapp.config.middleware:make_app", pythonpath=[APPS])

#: what a two-process deployment needs besides the processes
SCALE_OUT = (
    "socketio.message_queue = {redis}\nsocketio.channel = qsapp\n"
    "anypubsub.backend = redis\nanypubsub.host = {redis}"
)


def join(client_factory, server, namespace, transports=("websocket",)):
    client = client_factory(socketio.Client(reconnection=False))
    client.connect(server.url, namespaces=[namespace], socketio_path="socketio",
                   transports=list(transports), wait_timeout=10)
    return client


def test_gearbox_serves_a_quickstart_app(gearbox, client_factory):  # noqa: F811
    server = gearbox(**QUICKSTART)
    server.wait_for_log("serving Socket.IO at")
    assert requests.get(server.url + "/socketio/page", timeout=5).text == "page served"
    for transports in (["websocket"], ["polling"], ["polling", "websocket"]):
        client = join(client_factory, server, "/pingpong", transports)
        pongs = []
        client.on("pong", pongs.append, namespace="/pingpong")
        assert client.call("ping", {"type": "ping"}, namespace="/pingpong",
                           timeout=5) == server.process.pid
        assert pongs == [{"sound": "pong"}]


def test_the_admin_view_of_a_quickstart_app_sees_its_clients_and_events(
    gearbox, client_factory  # noqa: F811
):
    # RootController (found by TG, not passed) mounts a read-only
    # SocketIOAdminController behind a predicate of the app's own: the
    # engines keep their events from the first one, before any admin looked
    server = gearbox(**QUICKSTART)
    server.wait_for_log("serving Socket.IO at")
    client = join(client_factory, server, "/pingpong")
    client.call("ping", {"type": "ping"}, namespace="/pingpong", timeout=5)
    state = requests.get(server.url + "/socketio_admin/state", timeout=10).json()
    assert [listed["sid"] for listed in state["clients"]] == [client.get_sid("/pingpong")]
    assert [(event["namespace"], event["event"]) for event in state["events"]] == [
        ("/pingpong", "ping")]
    assert state["read_only"] is True
    refused = requests.post(server.url + "/socketio_admin/disconnect", timeout=10,
                            data={"user": "anyone"}, headers={"Origin": server.url})
    assert refused.status_code == 403


def test_a_quickstart_page_works_offline_in_chromium(gearbox, browser):  # noqa: F811
    # The page loads the client the package serves: no npm step, no CDN, and
    # Chromium reaches nothing but the server (CHROMIUM_FLAGS: every other
    # address goes to a proxy that is not there).
    server = gearbox(**QUICKSTART)
    server.wait_for_log("serving Socket.IO at")
    page = browser(server.url + "/")
    page.wait_until("document.getElementById('status').textContent === 'got pong'")
    requested = [event["request"]["url"]
                 for event in page.events("Network.requestWillBeSent")]
    assert server.url + "/socketio/socket.io.min.js" in requested
    assert [url for url in requested if not url.startswith(server.url + "/")] == []
    assert page.events("Runtime.exceptionThrown") == []


def test_a_bad_value_stops_a_quickstart_app_before_any_request(gearbox):  # noqa: F811
    server = gearbox(extra="socketio.ping_interval = soon", **QUICKSTART)
    assert server.wait_for_exit() != 0
    assert "socketio.ping_interval = 'soon' is not a positive number" in server.log()


def test_two_workers_with_pubsub_on_memory_are_refused_in_a_quickstart_app(
    gearbox, redis_server  # noqa: F811
):
    # The memory backend would give each subscriber the publications of its
    # own process only: the check needs the namespaces, found at start-up.
    server = gearbox(server_extra="workers = 2",
                     extra="socketio.message_queue = %s" % redis_server, **QUICKSTART)
    assert server.wait_for_exit() != 0
    assert ("workers = 2 in [server:main] runs 2 processes, and PubSubTGNamespace "
            "channels reach the subscribers of the other processes only through "
            "Redis: set anypubsub.backend = redis") in server.log()


def test_two_workers_share_channels_and_clients_in_a_quickstart_app(
    gearbox, client_factory, redis_server  # noqa: F811
):
    server = gearbox(server_extra="workers = 2",
                     extra=SCALE_OUT.format(redis=redis_server), **QUICKSTART)
    server.wait_for_log("with 2 worker processes")
    # a subscriber on each process (the router hands connections out in turn)
    by_pid, sids = {}, []
    for _ in range(10):
        client = join(client_factory, server, "/channels")
        sids.append(client.get_sid("/channels"))
        pid = client.call("shout", "hello", namespace="/channels", timeout=10)
        by_pid.setdefault(pid, client)
        if len(by_pid) == 2:
            break
    assert len(by_pid) == 2, by_pid
    # a controller action of one process lists the clients of both
    listed = requests.get(server.url + "/socketio/clients", timeout=10).json()
    assert listed == {"sids": sorted(sids), "pids": sorted(by_pid)}
    received = collections.defaultdict(list)
    for pid, client in by_pid.items():
        client.on("pubblication", lambda message, *rest, pid=pid:
                  received[pid].append(message), namespace="/channels")
        assert client.call("subscribe", "news", namespace="/channels",
                           timeout=10) == "news"
    for client in by_pid.values():
        for number in range(3):
            client.emit("shout", "message %d" % number, namespace="/channels")
    with gevent.Timeout(10, AssertionError("received %s" % dict(received))):
        while sum(len(messages) for messages in received.values()) < 12:
            gevent.sleep(0.05)
    for pid in by_pid:
        assert len(received[pid]) == 6  # 3 from each process
        assert {message["pid"] for message in received[pid]} == set(by_pid)


def test_two_workers_of_a_quickstart_app_sum_their_metrics(
    gearbox, client_factory, redis_server  # noqa: F811
):
    from prometheus_client.parser import text_string_to_metric_families

    server = gearbox(server_extra="workers = 2", extra="socketio.metrics = true\n"
                     + SCALE_OUT.format(redis=redis_server), **QUICKSTART)
    server.wait_for_log("with 2 worker processes")
    clients = [join(client_factory, server, "/pingpong") for _ in range(4)]
    pids = collections.Counter(
        client.call("ping", {"type": "ping"}, namespace="/pingpong", timeout=10)
        for client in clients)
    assert len(pids) == 2, pids  # the router hands connections out in turn

    def pings_counted():
        text = requests.get(server.url + "/metrics", timeout=10).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "socketio_events_received_total"
            and sample.labels == {"namespace": "/pingpong", "event": "ping"})

    # each process adds its tallies within a second; any one answers the scrape
    with gevent.Timeout(10, AssertionError("pings counted: %s" % pings_counted())):
        while pings_counted() != 4:
            gevent.sleep(0.2)
    for _ in range(4):
        assert pings_counted() == 4


def test_gunicorn_serves_a_quickstart_app(gunicorn, client_factory):  # noqa: F811
    server = gunicorn(**QUICKSTART)
    server.wait_for_log("Booting worker")
    wait_until_served(server, "/socketio/page")
    client = join(client_factory, server, "/pingpong")
    assert client.call("ping", {"type": "ping"}, namespace="/pingpong", timeout=5)


def test_gunicorn_workers_with_pubsub_on_memory_are_refused_in_a_quickstart_app(
    gunicorn, redis_server  # noqa: F811
):
    def two_workers(ini, port):
        return gunicorn_command(ini, port) + ["-w", "2"]

    server = gunicorn(command=two_workers, extra="socketio.message_queue = %s\n"
                      "socketio.transports = websocket" % redis_server, **QUICKSTART)
    assert server.wait_for_exit(timeout=30) != 0
    assert ("gunicorn -w 2 runs 2 processes, and PubSubTGNamespace channels reach "
            "the subscribers of the other processes only through Redis"
            in server.log())


# -- strict settings ----------------------------------------------------------


@pytest.mark.parametrize("extra, key, nearest", [
    ("socketio.ping_intervall = 5", "socketio.ping_intervall", "socketio.ping_interval"),
    ("socketio.cors_allowed_origin = https://example.com",
     "socketio.cors_allowed_origin", "socketio.cors_allowed_origins"),
    ("socketio.max_http_buffer = 10", "socketio.max_http_buffer",
     "socketio.max_http_buffer_size"),
])
def test_a_misspelled_app_setting_stops_start_up_naming_the_nearest_key(
    gearbox, extra, key, nearest  # noqa: F811
):
    server = gearbox(extra=extra, **QUICKSTART)
    assert server.wait_for_exit() != 0
    assert ("%s in [app:main] of your .ini file is not a tgext.socketio setting; "
            "did you mean %s?" % (key, nearest)) in server.log()


def test_a_misspelled_server_setting_stops_start_up_naming_the_nearest_key(
    gearbox,  # noqa: F811
):
    server = gearbox(server_extra="socketio_resourse = socketio", **QUICKSTART)
    assert server.wait_for_exit() != 0
    assert ("socketio_resourse in [server:main] of your .ini file is not a "
            "tgext.socketio setting; did you mean socketio_resource?") in server.log()


def test_an_unknown_setting_far_from_any_lists_the_settings(gearbox):  # noqa: F811
    server = gearbox(extra="socketio.colour = blue", **QUICKSTART)
    assert server.wait_for_exit() != 0
    assert ("socketio.colour in [app:main] of your .ini file is not a tgext.socketio "
            "setting; the settings are socketio.allow_upgrades, ") in server.log()


def test_settings_of_other_packages_are_left_alone(gearbox, client_factory):  # noqa: F811
    server = gearbox(extra="socketio_extra.colour = blue\nmyapp.socketio.x = 1\n"
                     "beaker.session.type = memory", **QUICKSTART)
    server.wait_for_log("serving Socket.IO at")
    client = join(client_factory, server, "/pingpong")
    assert client.call("ping", {"type": "ping"}, namespace="/pingpong", timeout=5)


# -- where the controller is mounted -----------------------------------------


def test_a_controller_mounted_away_from_the_resource_stops_start_up(gearbox):  # noqa: F811
    server = gearbox(resource="live", **QUICKSTART)
    assert server.wait_for_exit() != 0
    assert ("socketio_resource in [server:main] is live, but the app's "
            "SocketIOController is mounted at /socketio: set socketio_resource = "
            "socketio (or mount the controller at /live).") in server.log()


def test_gunicorn_refuses_a_controller_mounted_away_from_the_resource(
    gunicorn,  # noqa: F811
):
    server = gunicorn(resource="live", **QUICKSTART)
    assert server.wait_for_exit(timeout=30) != 0
    assert ("is live, but the app's SocketIOController is mounted at /socketio"
            in server.log())


def test_an_app_test_of_the_quickstart_app_with_the_channel_helper(monkeypatch):
    """What docs/testing.rst shows: a quickstart app's channels asserted with
    tgext.socketio.testing's ChannelClient, in a few lines."""
    import sys

    from tgext.socketio.testing import LiveServer

    monkeypatch.syspath_prepend(APPS)
    from qsapp.config.middleware import make_app

    app = make_app({}, debug="false")
    with LiveServer(app) as server:
        listener, shouter = server.channels("/channels"), server.channels("/channels")
        assert listener.subscribe("news") == "news"
        assert listener.refused("sports") == "channel_not_available"
        shouter.client.call("shout", "hello", namespace="/channels", timeout=5)
        assert listener.publication("news") == {"text": "hello", "pid": os.getpid()}
        shouter.assert_nothing()
    assert "qsapp" in sys.modules
