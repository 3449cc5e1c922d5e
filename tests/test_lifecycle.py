"""Namespace lifecycle: connect/disconnect hooks, session, spawn, ACL,
messages, errors and server-side disconnects, over real connections."""
import gevent
import pytest
import socketio
from gevent.queue import Queue

from tgext.socketio import BaseNamespace
from tgext.socketio.testing import disconnect_client


class Journal:
    """What the server-side namespaces saw, shared with the test."""

    def __init__(self):
        self.events = Queue()
        self.jobs = []


@pytest.fixture
def journal():
    return Journal()


def namespaces_for(journal):
    class Tracked(BaseNamespace):
        def initialize(self):
            journal.events.put(("initialize", self.ns_name))

        def recv_connect(self):
            journal.events.put(("connect", self.ns_name, self.socket.id))
            if self.auth == {"refuse": True}:
                return False
            self.emit("welcome", self.ns_name)

        def recv_disconnect(self):
            journal.events.put(("disconnect", self.ns_name))
            super().recv_disconnect()

        def on_remember(self, key, value):
            self.session[key] = value

        def on_recall(self, key):
            return self.session.get(key)

        def on_start_job(self):
            def forever():
                while True:
                    gevent.sleep(0.05)

            job = self.spawn(forever)
            journal.jobs.append(job)
            return len(self.jobs)

        def on_nap(self, seconds):
            journal.events.put(("napping", self.ns_name))
            gevent.sleep(seconds)
            journal.events.put(("napped", self.ns_name))

        def on_record(self, value):
            journal.events.put(("record", value))

        def on_crash(self):
            raise RuntimeError("boom")

        def on_leave(self):
            self.disconnect()
            self.emit("after leaving")  # the client has left: never sent

        def on_message(self, data):
            return "on_message: %s" % data

    class Legacy(BaseNamespace):
        def recv_message(self, data):
            return "text: %s" % data

        def recv_json(self, data):
            return {"json": data}

        def on_quiet_error(self):
            self.error("custom", "not sent", quiet=True)
            return "done"

        def on_loud_error(self):
            self.error("custom", "sent")

    class Guarded(BaseNamespace):
        def get_initial_acl(self):
            return {"recv_connect", "on_login", "on_public"}

        def on_login(self):
            self.add_acl_method("on_secret")
            return "logged in"

        def on_logout(self):
            return "never allowed"

        def on_public(self):
            return "public"

        def on_secret(self):
            return "secret"

        def on_lift(self):
            return "never allowed"

    return {"tracked": Tracked, "other": Tracked, "legacy": Legacy, "guarded": Guarded}


def errors_of(client, namespace):
    queue = Queue()
    client.on("error", lambda *args: queue.put(args), namespace=namespace)
    return queue


def drain(queue, until):
    seen = []
    with gevent.Timeout(5, AssertionError("never saw %r; saw %r" % (until, seen))):
        while True:
            item = queue.get()
            seen.append(item)
            if item[: len(until)] == until:
                return seen


def test_recv_connect_runs_after_initialize_and_its_emit_arrives(serve, journal):
    server = serve(namespaces_for(journal))
    welcome = Queue()
    client = socketio.Client()
    client.on("welcome", lambda ns: welcome.put(ns), namespace="/tracked")
    server._clients.append(client)
    client.connect(server.url, namespaces=["/tracked"], socketio_path="socketio",
                   transports=["websocket"])
    assert welcome.get(timeout=5) == "/tracked"
    assert journal.events.get(timeout=5) == ("initialize", "/tracked")
    assert journal.events.get(timeout=5)[:2] == ("connect", "/tracked")


def test_recv_connect_returning_false_refuses_the_client(serve, journal, wait_for):
    # The CONNECT packet precedes recv_connect (what it emits must reach the
    # client), so a refusal is a DISCONNECT of the namespace right after it.
    server = serve(namespaces_for(journal))
    disconnected = Queue()
    client = socketio.Client()
    client.on("disconnect", lambda *reason: disconnected.put(reason), namespace="/tracked")
    server._clients.append(client)
    client.connect(server.url, namespaces=["/tracked"], socketio_path="socketio",
                   transports=["websocket"], auth={"refuse": True})
    assert disconnected.get(timeout=5) == ("server disconnect",)
    drain(journal.events, ("connect", "/tracked"))
    wait_for(lambda: "/tracked" not in client.namespaces)
    with pytest.raises(socketio.exceptions.BadNamespaceError):
        client.emit("recall", "x", namespace="/tracked")


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_recv_disconnect_runs_when_the_client_leaves(serve, journal, transport):
    server = serve(namespaces_for(journal))
    client = server.connect(namespaces=["/tracked"], transport=transport)
    drain(journal.events, ("connect", "/tracked"))
    disconnect_client(client)
    drain(journal.events, ("disconnect", "/tracked"))


def test_session_is_shared_by_the_namespaces_of_one_connection(serve, journal):
    server = serve(namespaces_for(journal))
    client = server.connect(namespaces=["/tracked", "/other"])
    other_client = server.connect(namespaces=["/tracked"])
    client.call("remember", ("color", "blue"), namespace="/tracked", timeout=5)
    assert client.call("recall", "color", namespace="/other", timeout=5) == "blue"
    assert other_client.call("recall", "color", namespace="/tracked", timeout=5) is None


def test_spawned_jobs_are_killed_at_disconnect(serve, journal, wait_for):
    server = serve(namespaces_for(journal))
    client = server.connect(namespaces=["/tracked"])
    assert client.call("start_job", namespace="/tracked", timeout=5) == 1
    assert client.call("start_job", namespace="/tracked", timeout=5) == 2
    assert not any(job.dead for job in journal.jobs)
    client.disconnect()
    wait_for(lambda: all(job.dead for job in journal.jobs))


def test_handler_exception_sends_internal_server_error_and_connection_survives(
    serve, journal
):
    server = serve(namespaces_for(journal))
    client = server.connect(namespaces=["/tracked", "/other"])
    errors = errors_of(client, "/tracked")
    assert client.call("crash", namespace="/tracked", timeout=5) is None
    assert errors.get(timeout=5) == (
        "internal_server_error", 'The server failed while running "on_crash"'
    )
    assert client.call("recall", "x", namespace="/tracked", timeout=5) is None
    assert client.call("recall", "x", namespace="/other", timeout=5) is None


def test_server_side_disconnect_leaves_only_that_namespace(serve, journal, wait_for):
    server = serve(namespaces_for(journal))
    client = server.connect(namespaces=["/tracked", "/other"])
    disconnected, after = Queue(), Queue()
    client.on("disconnect", lambda *reason: disconnected.put("gone"), namespace="/tracked")
    client.on("after leaving", lambda: after.put("sent"), namespace="/tracked")
    client.emit("leave", namespace="/tracked")
    assert disconnected.get(timeout=5) == "gone"
    assert client.call("recall", "x", namespace="/other", timeout=5) is None
    assert after.empty()
    # the namespace's own disconnect() is not a client leaving
    assert ("disconnect", "/tracked") not in drain_now(journal.events)


def test_send_text_and_object_reach_recv_message_and_recv_json(serve, journal):
    server = serve(namespaces_for(journal))
    client = server.connect(namespaces=["/legacy", "/tracked"])
    assert client.call("message", "hi", namespace="/legacy", timeout=5) == "text: hi"
    assert client.call("message", {"a": 1}, namespace="/legacy", timeout=5) == {
        "json": {"a": 1}
    }
    assert client.call("message", "hi", namespace="/tracked", timeout=5) == (
        "on_message: hi"
    )


def test_quiet_error_is_not_sent(serve, journal):
    server = serve(namespaces_for(journal))
    client = server.connect(namespaces=["/legacy"])
    errors = errors_of(client, "/legacy")
    assert client.call("quiet_error", namespace="/legacy", timeout=5) == "done"
    client.emit("loud_error", namespace="/legacy")
    assert errors.get(timeout=5) == ("custom", "sent")


def test_acl_denies_until_a_method_is_added(serve, journal):
    server = serve(namespaces_for(journal))
    client = server.connect(namespaces=["/guarded"])
    errors = errors_of(client, "/guarded")
    assert client.call("secret", namespace="/guarded", timeout=5) is None
    assert errors.get(timeout=5) == (
        "method_access_denied", 'You do not have access to method "on_secret"'
    )
    assert client.call("login", namespace="/guarded", timeout=5) == "logged in"
    assert client.call("secret", namespace="/guarded", timeout=5) == "secret"
    assert client.call("public", namespace="/guarded", timeout=5) == "public"


def test_acl_helpers_follow_gevent_socketio(journal):
    guarded_class = namespaces_for(journal)["guarded"]
    namespace = guarded_class.__new__(guarded_class)
    namespace.reset_acl()
    assert not namespace.is_method_allowed("on_secret")
    namespace.add_acl_method(["on_secret", "on_more"])
    assert namespace.is_method_allowed("on_more")
    namespace.del_acl_method("on_more")
    assert not namespace.is_method_allowed("on_more")
    namespace.lift_acl_restrictions()
    assert namespace.is_method_allowed("on_anything")
    with pytest.raises(ValueError, match="no ACL restrictions are set"):
        namespace.del_acl_method("on_secret")


@pytest.mark.parametrize(
    "event, expected",
    [
        ("nope", ("no_such_method", 'The method "on_nope" was not found')),
        ("bad-name!", ("unallowed_event_name",
                       "name must only contains alpha numerical characters")),
        ("_private", ("unallowed_event_name",
                      "name must only contains alpha numerical characters")),
        ("1st", ("unallowed_event_name",
                 "name must only contains alpha numerical characters")),
    ],
)
def test_wire_errors_for_bad_event_names(serve, journal, event, expected):
    server = serve(namespaces_for(journal))
    client = server.connect(namespaces=["/legacy"])
    errors = errors_of(client, "/legacy")
    assert client.call(event, namespace="/legacy", timeout=5) is None
    assert errors.get(timeout=5) == expected


def test_events_still_queued_when_the_client_leaves_are_dropped(serve, journal):
    server = serve(namespaces_for(journal))
    client = server.connect(namespaces=["/tracked"])
    drain(journal.events, ("connect", "/tracked"))
    client.emit("nap", 1, namespace="/tracked")
    client.emit("record", 1, namespace="/tracked")
    client.emit("record", 2, namespace="/tracked")
    drain(journal.events, ("napping", "/tracked"))  # the records wait behind it
    client.disconnect()
    seen = drain(journal.events, ("napped", "/tracked"))
    gevent.sleep(0.3)
    while not journal.events.empty():
        seen.append(journal.events.get())
    assert not [item for item in seen if item[0] == "record"]


def drain_now(queue):
    items = []
    while not queue.empty():
        items.append(queue.get())
    return items


def test_client_leaving_while_recv_connect_runs_leaves_nothing_behind(serve, journal):
    # Over long-polling the client's goodbye arrives in another request while
    # recv_connect, which yields, still runs: what it spawns afterwards dies.
    import requests

    class SlowStart(BaseNamespace):
        def recv_connect(self):
            journal.events.put(("connect start",))
            gevent.sleep(2)  # the goodbye's own request comes meanwhile
            journal.jobs.append(self.spawn(gevent.sleep, 60))
            journal.events.put(("connect end",))

        def recv_disconnect(self):
            journal.events.put(("disconnect",))

    server = serve({"slow": SlowStart})
    base = server.url + "/socketio/?EIO=4&transport=polling"
    handshake = requests.get(base, timeout=5).text
    eio_sid = handshake.split('"sid":"')[1].split('"')[0]
    session = base + "&sid=" + eio_sid
    joining = gevent.spawn(requests.post, session, data="40/slow,", timeout=5)
    assert journal.events.get(timeout=5) == ("connect start",)
    assert requests.post(session, data="41/slow,", timeout=5).status_code == 200
    joining.join(timeout=5)
    assert [journal.events.get(timeout=5) for _ in range(2)] == [
        ("disconnect",), ("connect end",)]
    job = journal.jobs[0]
    job.join(timeout=5)
    assert job.dead
    assert server.controller.engine._instances == {}
