"""Prometheus metrics (``socketio.metrics = true``), scraped through a mounted
MetricsController: known traffic gives exact counts, label values stay
bounded, the page is guarded like any TG controller, ``workers = 2`` shows
the sum of both processes, and nothing is counted while the option is off."""
import os
import re

import gevent
import pytest
import requests
import socketio
import websocket
from gevent.queue import Queue
from prometheus_client.parser import text_string_to_metric_families
from tg import TGController, predicates

from tgext.socketio import (
    BaseNamespace,
    MetricsController,
    PubSubTGNamespace,
    RoomsMixin,
)
from tgext.socketio._engine.runtime import runtime_of
from tgext.socketio._metrics.labels import MAX_ERROR_NAMES, OTHER

from .apps.auth_app import DictAuthMetadata, _configurator, _LoginPages, login
from .conftest import build_app, controller_for, with_config
from .test_gunicorn import gunicorn  # noqa: F401 (fixture)
from .test_server_runner import gearbox  # noqa: F401 (fixture)
from .test_workers import over_redis

ON = {"socketio.metrics": "true"}


class Counted(BaseNamespace):
    def on_hello(self, text):
        return "hi " + text

    def on_fail(self):
        self.error("custom_failure", "it failed")

    def on_boom(self):
        raise RuntimeError("a handler failing, on purpose")

    def on_many_errors(self, count):
        for number in range(count):
            self.error("error_%d" % number, "one of many")
        return "done"


class Refusing(BaseNamespace):
    def recv_connect(self):
        return False


def scrape(url, **kwargs):
    """``{(name, ((label, value), ...)): value}`` of one scrape of ``url``."""
    response = requests.get(url, timeout=10, **kwargs)
    assert response.status_code == 200, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0)


def disconnects(samples):
    return {
        dict(labels)["reason"]: count
        for (name, labels), count in samples.items()
        if name == "socketio_disconnects_total"
    }


def wait_for_value(url, name, expected, timeout=10, **labels):
    """Scrape until ``name{labels}`` is ``expected`` (the server counts what
    the client sent once it arrives); returns the last scrape."""
    with gevent.Timeout(timeout, False):
        while True:
            samples = scrape(url)
            if value(samples, name, **labels) == expected:
                return samples
            gevent.sleep(0.05)
    raise AssertionError(
        "%s%r is %r, not %r" % (name, labels, value(samples, name, **labels), expected)
    )


@pytest.fixture
def metered(live_server):
    """A live app serving /counted and /refusing, metrics at /metrics."""
    root = TGController()
    root.__dict__["socketio"] = controller_for({"counted": Counted, "refusing": Refusing})
    root.__dict__["metrics"] = MetricsController()
    server = live_server(build_app(root=root, config=ON))
    server.metrics_url = server.url + "/metrics"
    return server


def errors_of(client):
    queue = Queue()
    client.on("error", lambda *args: queue.put(args), namespace="/counted")
    return queue


def test_known_traffic_gives_exact_counts(metered):
    url = metered.metrics_url
    clients = [
        metered.connect(namespaces=["/counted"], transport=transport)
        for transport in ("websocket", "polling", "websocket")
    ]
    errors = errors_of(clients[0])
    for number in range(5):
        assert clients[0].call("hello", str(number), namespace="/counted") == "hi %d" % number
    for _ in range(4):
        clients[1].emit("nothing_here", namespace="/counted")
    clients[0].emit("fail", namespace="/counted")
    assert errors.get(timeout=5) == ("custom_failure", "it failed")
    assert clients[2].call("boom", namespace="/counted", timeout=5) is None
    # refused: CONNECT, then DISCONNECT (as 0.0.x); with no namespace
    # left, python-socketio's client closes its connection
    metered.connect(namespaces=["/refusing"])
    wait_for_value(url, "socketio_refused_total", 1, reason="connect_refused")
    # a bad packet: "4" and no Socket.IO packet type after it
    raw = websocket.create_connection(
        metered.url.replace("http", "ws") + "/socketio/?EIO=4&transport=websocket",
        timeout=5,
    )
    try:
        assert raw.recv().startswith("0{")
        raw.send("4x")
        wait_for_value(url, "socketio_refused_total", 1, reason="bad_packet")
    finally:
        raw.close()
    samples = wait_for_value(
        url, "socketio_events_received_total", 4, namespace="/counted", event=OTHER
    )
    events = {
        labels: count
        for (name, labels), count in samples.items()
        if name == "socketio_events_received_total" and count
    }
    assert events == {
        (("event", "hello"), ("namespace", "/counted")): 5,
        (("event", OTHER), ("namespace", "/counted")): 4,
        (("event", "fail"), ("namespace", "/counted")): 1,
        (("event", "boom"), ("namespace", "/counted")): 1,
    }
    handled = "socketio_event_duration_seconds_count"
    assert value(samples, handled, namespace="/counted", event="hello") == 5
    assert value(samples, handled, namespace="/counted", event=OTHER) == 4
    assert value(samples, handled, namespace="/counted", event="boom") == 1
    failures = {
        labels: count
        for (name, labels), count in samples.items()
        if name == "socketio_event_failures_total" and count
    }
    assert failures == {(("event", "boom"), ("namespace", "/counted")): 1}
    # 5 hello calls, and the refusal's empty ack of the failed boom call
    assert value(samples, "socketio_acks_sent_total", namespace="/counted") == 6
    errors_sent = "socketio_errors_sent_total"
    assert value(samples, errors_sent, error="custom_failure") == 1
    assert value(samples, errors_sent, error="no_such_method") == 4
    assert value(samples, errors_sent, error="internal_server_error") == 1
    assert value(samples, "socketio_refused_total", reason="connect_refused") == 1
    assert value(samples, "socketio_refused_total", reason="bad_packet") == 1
    assert value(samples, "socketio_namespace_connections", namespace="/counted") == 3
    assert value(samples, "socketio_namespace_connections", namespace="/refusing") == 0
    # the three clients (LiveServer's readiness handshake is a polling session)
    assert value(samples, "socketio_sessions_open", transport="websocket") == 2
    assert value(samples, "socketio_sessions_open", transport="polling") == 2
    assert value(samples, "socketio_queued_packets_max") >= 1

    # the rejected raw connection, the refused client's
    before = disconnects(samples)
    assert sum(before.values()) == 2
    clients[2].disconnect()  # (over WebSocket the server sees its transport close)
    with gevent.Timeout(10, AssertionError("the disconnect was not counted")):
        while disconnects(samples) == before:
            gevent.sleep(0.05)
            samples = scrape(url)
    gevent.sleep(0.2)
    samples = scrape(url)
    assert sum(disconnects(samples).values()) == 3
    assert set(disconnects(samples)) <= {"client_disconnect", "transport_close"}
    assert value(samples, "socketio_namespace_connections", namespace="/counted") == 2
    assert value(samples, "socketio_sessions_open", transport="websocket") == 1


def test_unknown_event_names_share_one_series(metered):
    client = metered.connect(namespaces=["/counted"])
    errors = errors_of(client)
    for number in range(200):
        client.emit("unknown %d" % number, namespace="/counted")
    for _ in range(200):
        assert errors.get(timeout=5)[0] == "no_such_method"
    samples = scrape(metered.metrics_url)
    events = {
        dict(labels)["event"]
        for (name, labels), _count in samples.items()
        if name == "socketio_events_received_total"
    }
    assert events == {"hello", "fail", "boom", "many_errors", "message", OTHER}
    assert value(
        samples, "socketio_events_received_total", namespace="/counted", event=OTHER
    ) == 200


def test_error_names_past_the_cap_count_as_other(metered):
    client = metered.connect(namespaces=["/counted"])
    assert client.call("many_errors", MAX_ERROR_NAMES + 10, namespace="/counted") == "done"
    samples = scrape(metered.metrics_url)
    names = {
        dict(labels)["error"]
        for (name, labels), _count in samples.items()
        if name == "socketio_errors_sent_total"
    }
    assert len(names) == MAX_ERROR_NAMES + 1 and OTHER in names
    assert value(samples, "socketio_errors_sent_total", error=OTHER) == 10


def test_the_page_is_guarded_as_any_tg_controller(live_server):
    root_class = type(
        "Root",
        (_LoginPages,),
        {
            "socketio": controller_for({"counted": Counted}),
            "metrics": MetricsController(allow_only=predicates.has_permission("edit")),
        },
    )
    configurator = _configurator(root_class(), {
        "sa_auth.enabled": True,
        "sa_auth.cookie_secret": "not-a-secret-test-value",
        "sa_auth.authmetadata": DictAuthMetadata(),
        "sa_auth.post_login_url": "/logged_in",
        "sa_auth.post_logout_url": "/",
        **ON,
    })
    server = live_server(with_config(configurator.make_wsgi_app()))
    url = server.url + "/metrics"
    anonymous = requests.get(url, timeout=10, allow_redirects=False)
    assert anonymous.status_code in (302, 401) and "socketio_" not in anonymous.text
    reader = requests.get(
        url, timeout=10, headers={"Cookie": login(server.url, "bob")}, allow_redirects=False
    )
    assert reader.status_code == 403 and "socketio_" not in reader.text
    samples = scrape(url, headers={"Cookie": login(server.url, "alice")})
    assert ("socketio_sessions_open", (("transport", "polling"),)) in samples


def test_off_by_default_the_page_is_404_and_nothing_counts(live_server):
    root = TGController()
    root.__dict__["socketio"] = controller_for({"counted": Counted})
    root.__dict__["metrics"] = MetricsController()
    app = build_app(root=root)
    server = live_server(app)
    client = server.connect(namespaces=["/counted"])
    assert client.call("hello", "there", namespace="/counted") == "hi there"
    response = requests.get(server.url + "/metrics", timeout=10)
    assert response.status_code == 404
    assert "socketio.metrics = true" in response.text
    runtime = runtime_of(app.app_config)
    assert runtime.metrics is None
    engine = runtime.engines[0]
    assert engine.metrics is None and engine.eio.metrics is None
    assert engine._dispatcher.metrics is None


def test_two_workers_show_their_sum_in_every_scrape(gearbox, redis_server):  # noqa: F811
    server = gearbox(
        server_extra="workers = 2",
        extra=over_redis(redis_server, "metered") + "\nsocketio.metrics = true",
        app="tests.apps.metrics_app:make_app",
    )
    shared = server.wait_for_log_match(r"metrics: 2 worker processes share (\S+)")
    directory = shared.group(1)
    server.wait_for_log("with 2 worker processes")
    clients, by_pid = [], {}
    for transports in (["polling"], ["websocket"]) * 6:
        client = socketio.Client(reconnection=False)
        client.connect(server.url, namespaces=["/probe"], socketio_path="socketio",
                       transports=transports, wait_timeout=10)
        clients.append(client)
        pid = client.call("whoami", namespace="/probe", timeout=10)
        by_pid[pid] = by_pid.get(pid, 0) + 1
    try:
        assert len(by_pid) == 2, by_pid  # clients on both workers
        for client in clients:
            for _ in range(3):
                assert client.call("ping", {}, namespace="/probe", timeout=10) == "ack"
        # each worker brings its values up to date every second (the one
        # answering a scrape, at once): then every scrape shows the sum
        wait_for_value(server.url + "/metrics", "socketio_events_received_total", 36,
                       namespace="/probe", event="ping")
        # each scrape is a new connection, routed to either worker in turn
        for _ in range(6):
            samples = scrape(server.url + "/metrics")
            received = "socketio_events_received_total"
            assert value(samples, received, namespace="/probe", event="ping") == 36
            assert value(samples, received, namespace="/probe", event="whoami") == 12
            assert value(samples, "socketio_namespace_connections", namespace="/probe") == 12
            assert value(samples, "socketio_sessions_open", transport="websocket") == 6
            assert value(samples, "socketio_sessions_open", transport="polling") == 6
    finally:
        for client in clients:
            client.disconnect()
    assert os.path.isdir(directory)
    server.stop()  # SIGTERM: a clean shutdown removes the directory
    assert not os.path.exists(directory), server.log()


def metric_names():
    from tgext.socketio._metrics.instruments import Instruments

    return {
        family.name
        for collector in [Instruments().registry]
        for family in collector.collect()
    }


def test_the_docs_and_the_dashboard_name_every_metric_and_no_other():
    import json
    import pathlib

    docs = pathlib.Path(__file__).parent.parent / "docs"
    names = metric_names()
    page = (docs / "metrics.rst").read_text()
    for name in names:
        counter = name + "_total"
        assert ("``%s``" % name in page) or ("``%s``" % counter in page), name
    dashboard = json.loads((docs / "grafana-dashboard.json").read_text())
    variables = {item["name"]: item for item in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    used = set()
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            used.update(re.findall(r"\bsocketio_\w+", target["expr"]))
    suffixes = re.compile(r"_(total|bucket|count|sum)$")
    assert {suffixes.sub("", name) for name in used} == names


def gunicorn_with(conf, workers):
    from .test_gunicorn import gunicorn_command

    def command(ini, port):
        return gunicorn_command(ini, port) + ["-w", str(workers), "-c", str(conf)]

    return command


GUNICORN_CONF = "from tgext.socketio.gunicorn import child_exit  # noqa: F401\n"
METERED_WEBSOCKET = "\nsocketio.transports = websocket\nsocketio.metrics = true"


def test_gunicorn_workers_show_their_sum_and_drop_a_dead_ones_gauges(
    gunicorn, redis_server, tmp_path, monkeypatch  # noqa: F811
):
    import signal

    from .test_gunicorn import clients_on_each_worker, wait_until_served

    shared = tmp_path / "metrics"
    shared.mkdir()
    conf = tmp_path / "gunicorn_conf.py"
    conf.write_text(GUNICORN_CONF)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared))
    server = gunicorn(
        extra=over_redis(redis_server, "gmetered") + METERED_WEBSOCKET,
        app="tests.apps.metrics_app:make_app",
        command=gunicorn_with(conf, 2),
    )
    wait_until_served(server, "/socketio/page")

    def connect():
        client = socketio.Client(reconnection=False)
        client.connect(server.url, namespaces=["/probe"], socketio_path="socketio",
                       transports=["websocket"], wait_timeout=10)
        return client, client.call("whoami", namespace="/probe", timeout=10)

    by_pid = clients_on_each_worker(server, connect, workers=2, per_worker=5)
    clients = [client for placed in by_pid.values() for client in placed]
    try:
        for client in clients:
            assert client.call("ping", {}, namespace="/probe", timeout=10) == "ack"
        wait_for_value(server.url + "/metrics", "socketio_events_received_total",
                       len(clients), namespace="/probe", event="ping")
        for _ in range(6):
            samples = scrape(server.url + "/metrics")
            received = "socketio_events_received_total"
            assert value(samples, received, namespace="/probe", event="ping") == len(clients)
            assert value(samples, "socketio_sessions_open", transport="websocket") == len(
                clients
            )
        dead, survivors = sorted(by_pid.items())[0], sorted(by_pid.items())[1]
        os.kill(dead[0], signal.SIGKILL)  # gunicorn's child_exit drops its gauges
        survivors_count = len(survivors[1])
        with gevent.Timeout(20, AssertionError("the dead worker's sessions still count")):
            while True:
                samples = scrape(server.url + "/metrics")
                open_now = value(samples, "socketio_sessions_open", transport="websocket")
                if open_now == survivors_count:
                    break
                gevent.sleep(0.2)
        # what it counted still counts
        assert value(samples, "socketio_events_received_total", namespace="/probe",
                     event="ping") == len(clients)
    finally:
        for client in clients:
            client.disconnect()


def test_gunicorn_workers_without_a_shared_directory_are_refused(
    gunicorn, redis_server, tmp_path, monkeypatch  # noqa: F811
):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    conf = tmp_path / "gunicorn_conf.py"
    conf.write_text(GUNICORN_CONF)
    server = gunicorn(
        extra=over_redis(redis_server, "grefused") + METERED_WEBSOCKET,
        app="tests.apps.metrics_app:make_app",
        command=gunicorn_with(conf, 2),
    )
    assert server.wait_for_exit(timeout=30) != 0
    assert ("socketio.metrics is on and gunicorn -w 2 runs 2 processes" in server.log())
    assert "PROMETHEUS_MULTIPROC_DIR" in server.log()


@pytest.mark.parametrize("reason, label", [
    ("a malformed Socket.IO packet (ValueError: attachments of over 10 bytes "
     "(socketio.max_attachment_bytes is 5))", "oversized"),
    ("a malformed Socket.IO packet (JSONDecodeError: Expecting value)", "bad_packet"),
    ("5 namespace connects refused (the last to '/x')", "too_many_refused_connects"),
    ("6 offences in a minute, the last: malformed event", "offences"),
    ("more than 1000 packets waiting to be sent (it does not read, or too slowly; "
     "socketio.max_queued_packets)", "slow_reader"),
    ("a long-polling body of 2000000 bytes (socketio.max_http_buffer_size is 1000000)",
     "oversized"),
    ("an undecodable long-polling body (ValueError: x)", "bad_packet"),
    ("a message that is no Socket.IO packet ('4x')", "bad_packet"),
    ("a message of over 1000000 bytes (the limit is 1000000)", "oversized"),
    ("a frame with reserved bits set", "bad_packet"),
    ("a text message that is not UTF-8", "bad_packet"),
    ("something new", "other"),
])
def test_a_cut_sessions_reason_becomes_one_of_the_fixed_labels(reason, label):
    from tgext.socketio._metrics.labels import REFUSAL_REASONS, refusal_label

    assert refusal_label(reason) == label
    assert label in REFUSAL_REASONS


class Following(RoomsMixin, PubSubTGNamespace):
    def subscribe_news(self):
        return True

    def on_enter(self, room):
        return self.join(room)


def test_backend_up_follows_an_outage_of_redis(own_redis, live_server):
    """``backend_up`` of the message queue and of PubSub goes to 0 while the
    Redis they share is stopped, and back to 1 when it is back; the client
    is served throughout."""
    config = dict(
        ON,
        **{
            "socketio.message_queue": own_redis.url,
            "socketio.channel": "outage",
            "anypubsub.backend": "redis",
            "anypubsub.host": own_redis.url,
        },
    )
    root = TGController()
    root.__dict__["socketio"] = controller_for({"following": Following})
    root.__dict__["metrics"] = MetricsController()
    server = live_server(build_app(root=root, config=config))
    url = server.url + "/metrics"
    client = server.connect(namespaces=["/following"])
    assert client.call("subscribe", "news", namespace="/following", timeout=5) == "news"
    samples = scrape(url)
    assert value(samples, "socketio_backend_up", backend="pubsub") == 1
    assert value(samples, "socketio_backend_up", backend="message_queue") == 1
    own_redis.stop()
    wait_for_value(url, "socketio_backend_up", 0, backend="pubsub")
    # presence finds out at its next write: a client entering a room
    assert client.call("enter", "lobby", namespace="/following", timeout=5) is True
    wait_for_value(url, "socketio_backend_up", 0, backend="message_queue")
    own_redis.start()
    wait_for_value(url, "socketio_backend_up", 1, timeout=15, backend="pubsub")
    assert client.call("enter", "hall", namespace="/following", timeout=5) is True
    wait_for_value(url, "socketio_backend_up", 1, timeout=15, backend="message_queue")


def test_recoveries_and_the_message_queue_are_counted(own_redis, live_server):
    """A client that recovers its state (on the other server sharing the
    queue) counts one attempt and one success; a pid nobody knows one
    attempt; the message queue's Redis is up."""
    from .test_recovery import raw_join

    config = dict(
        ON,
        **{
            "socketio.connection_state_recovery": "10",
            "socketio.message_queue": own_redis.url,
            "socketio.channel": "metered-recovery",
        },
    )
    servers = []
    for _ in range(2):
        root = TGController()
        root.__dict__["socketio"] = controller_for({"counted": Counted})
        root.__dict__["metrics"] = MetricsController()
        servers.append(live_server(build_app(root=root, config=config)))
    first, second = servers
    member, joined = raw_join(first, "/counted")
    member.send('42/counted,1["hello","there"]')
    assert member.recv().startswith("43/counted,1")
    engine = runtime_of(first.app_config).engines[0]
    member.shutdown()  # its transport lost
    with gevent.Timeout(5, AssertionError("the drop was not seen")):
        while not engine.recovery.dropped:
            gevent.sleep(0.02)
    back, reply = raw_join(second, "/counted", auth={"pid": joined["pid"]})
    assert reply == joined
    stranger, _ = raw_join(second, "/counted", auth={"pid": "nobody-knows-it"})
    samples = scrape(second.url + "/metrics")
    assert value(samples, "socketio_recovery_attempts_total") == 2
    assert value(samples, "socketio_recovery_successes_total") == 1
    assert value(samples, "socketio_backend_up", backend="message_queue") == 1
    assert value(scrape(first.url + "/metrics"), "socketio_recovery_attempts_total") == 0
    for sock in (back, stranger):
        sock.shutdown()
