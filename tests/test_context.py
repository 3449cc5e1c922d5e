"""The TurboGears request context inside handlers: tg.request, identity,
config, app_globals, tmpl_context, cache, translator, in events, connect,
disconnect and spawned greenlets, and never one connection's in another's."""
import gevent
import pytest
import tg
from gevent.queue import Queue

from tgext.socketio import SocketIOTGNamespace

from .apps.auth_app import build_remote_user_app
from .conftest import controller_for


def user_of_request():
    identity = tg.request.identity
    return identity["repoze.who.userid"] if identity else None


def context_report():
    tg.tmpl_context.seen_by = user_of_request()
    cache = tg.cache.get_cache("context-test", type="memory")
    cache.set_value("who", user_of_request())
    return {
        "user": user_of_request(),
        "path": tg.request.path,
        "config_has_validation": "validation.exceptions" in tg.config,
        "app_globals": tg.app_globals.marker,
        "tmpl_context": tg.tmpl_context.seen_by,
        "translator": tg.translator.gettext("hello"),
        "cache": cache.get_value("who"),
    }


def make_namespace(seen):
    class Context(SocketIOTGNamespace):
        def recv_connect(self):
            seen.put(("connect", user_of_request()))

        def recv_disconnect(self):
            seen.put(("disconnect", user_of_request()))
            super().recv_disconnect()

        def on_report(self):
            return context_report()

        def on_interleave(self, delay):
            before = user_of_request()
            gevent.sleep(delay)  # other clients' handlers run meanwhile
            return [before, user_of_request(), self.request.identity["repoze.who.userid"]]

        def on_ask(self):
            def answered(*args):
                self.emit("answered", user_of_request(), list(args))

            self.emit("question", callback=answered)

        def on_spawned(self):
            def job():
                self.emit("from job", user_of_request(), context_report()["path"])

            self.spawn(job)

    return Context


@pytest.fixture
def seen():
    return Queue()


@pytest.fixture
def server(live_server, seen):
    controller = controller_for({"context": make_namespace(seen)})
    return live_server(build_remote_user_app(controller))


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_tg_globals_work_inside_an_event_handler(server, transport):
    client = server.connect(namespaces=["/context"], transport=transport,
                            headers={"X-Test-User": "dora"})
    assert client.call("report", namespace="/context", timeout=5) == {
        "user": "dora",
        "path": "/socketio/",
        "config_has_validation": True,
        "app_globals": "the app's globals",
        "tmpl_context": "dora",
        "translator": "hello",
        "cache": "dora",
    }


def test_connect_and_disconnect_hooks_run_in_the_connections_context(server, seen):
    client = server.connect(namespaces=["/context"], headers={"X-Test-User": "erin"})
    assert seen.get(timeout=5) == ("connect", "erin")
    client.disconnect()
    assert seen.get(timeout=5) == ("disconnect", "erin")


def test_spawned_greenlets_run_in_the_connections_context(server):
    client = server.connect(namespaces=["/context"], headers={"X-Test-User": "fred"})
    from_job = Queue()
    client.on("from job", lambda *args: from_job.put(args), namespace="/context")
    client.emit("spawned", namespace="/context")
    assert from_job.get(timeout=5) == ("fred", "/socketio/")


def test_emit_callbacks_run_in_the_connections_context(server):
    client = server.connect(namespaces=["/context"], headers={"X-Test-User": "gina"})
    client.on("question", lambda: "forty-two", namespace="/context")
    answered = Queue()
    client.on("answered", lambda *args: answered.put(args), namespace="/context")
    client.emit("ask", namespace="/context")
    assert answered.get(timeout=5) == ("gina", ["forty-two"])


def test_fifty_identities_interleaving_each_see_their_own(server):
    users = ["user%02d" % number for number in range(50)]
    clients = [
        server.connect(namespaces=["/context"], headers={"X-Test-User": user},
                       transport="websocket" if number % 2 else "polling")
        for number, user in enumerate(users)
    ]
    calls = [
        gevent.spawn(client.call, "interleave", 0.05 + (number % 5) * 0.02,
                     namespace="/context", timeout=20)
        for number, client in enumerate(clients)
    ]
    gevent.joinall(calls, raise_error=True)
    for user, call in zip(users, calls):
        assert call.value == [user, user, user]
