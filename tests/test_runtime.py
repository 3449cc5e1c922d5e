"""Each app owns its runtime: engines built from its own config when it is
made, never shared with another app in the process, closed (clients
disconnected, greenlets ended) when the server serving it stops."""
import gc

import gevent
import pytest
import requests
import websocket
from tg import MinimalApplicationConfigurator, TGController, expose
from tg.configurator.components.debugger import DebuggerConfigurationComponent

from tgext.socketio import BaseNamespace, SocketIOController, emit
from tgext.socketio._engine.runtime import runtime_of
from tgext.socketio.exceptions import ConfigurationError
from tgext.socketio.server import SocketIOServer
from tgext.socketio.testing import LiveServer

from .conftest import build_app, controller_for

left = []


class Echo(BaseNamespace):
    def on_echo(self, value):
        return value

    def recv_disconnect(self):
        left.append(self.ns_name)
        super().recv_disconnect()


@expose("json")
def announce(self, text):
    emit("announcement", text, namespace="/echo")
    return {"sent": text}


def handshake(server):
    response = requests.get(server.url + "/socketio/?EIO=4&transport=polling", timeout=5)
    import json

    return json.loads(response.text[1:])


def test_two_apps_sharing_a_controller_keep_their_own_options_and_clients(live_server):
    shared = controller_for({"echo": Echo}, announce=announce)
    first = live_server(build_app(shared, config={"socketio.ping_interval": 7}))
    second = live_server(build_app(shared, config={"socketio.ping_interval": 9}))
    assert handshake(first)["pingInterval"] == 7000
    assert handshake(second)["pingInterval"] == 9000

    heard = {}
    for name, server in (("first", first), ("second", second)):
        client = server.connect(namespaces=["/echo"])
        heard[name] = []
        client.on("announcement", heard[name].append, namespace="/echo")
    assert requests.get(first.url + "/socketio/announce", params={"text": "one"},
                        timeout=5).json() == {"sent": "one"}
    assert requests.get(second.url + "/socketio/announce", params={"text": "two"},
                        timeout=5).json() == {"sent": "two"}
    with gevent.Timeout(5, AssertionError(heard)):
        while not (heard["first"] and heard["second"]):
            gevent.sleep(0.02)
    gevent.sleep(0.2)
    assert heard == {"first": ["one"], "second": ["two"]}


def test_settings_are_checked_when_the_app_is_made():
    with pytest.raises(ConfigurationError) as failure:
        build_app(controller_for({"echo": Echo}), config={"socketio.transports": "pigeon"})
    assert "socketio.transports = 'pigeon'" in str(failure.value)


def test_engines_are_built_with_the_app():
    controller = controller_for({"echo": Echo})
    app = build_app(controller, mount="deep/down/socketio")
    assert [engine.namespace_classes for engine in runtime_of(app.app_config).engines] \
        == [{"/echo": Echo}]


def live_greenlets():
    gc.collect()
    return [obj for obj in gc.get_objects()
            if isinstance(obj, gevent.Greenlet) and not obj.dead]


def test_stopping_the_server_disconnects_clients_and_ends_every_greenlet(wait_for):
    del left[:]
    baseline = len(live_greenlets())
    app = build_app(controller_for({"echo": Echo}))
    server = LiveServer(app).start()
    url = server.url.replace("http", "ws") + "/socketio/?EIO=4&transport=websocket"
    sockets = []
    for number in range(20):
        sock = websocket.create_connection(url, timeout=5)
        sockets.append(sock)
        assert sock.recv().startswith("0{")
        sock.send("40/echo,")
        assert sock.recv().startswith("40/echo,")
        sock.send('42/echo,1["echo",%d]' % number)
        assert sock.recv() == "43/echo,1[%d]" % number
    # (a client that reconnects would keep a greenlet of its own in this process)
    python_client = server.connect(namespaces=["/echo"], transport="polling",
                                   reconnection=False)
    reasons = []
    python_client.on("disconnect", lambda *reason: reasons.append(reason),
                     namespace="/echo")
    assert len(live_greenlets()) > baseline

    server._server.stop(timeout=5)  # as the server stops on its own: clients still on
    for sock in sockets:  # the transport closes (no DISCONNECT: clients reconnect)
        try:
            assert sock.recv() == ""  # the close frame
        except websocket.WebSocketConnectionClosedException:
            pass
        sock.close()
        sock.shutdown()  # close() leaves the socket open once the peer closed
    wait_for(lambda: reasons)
    assert len(left) == 21  # recv_disconnect ran for every client
    server.stop()
    wait_for(lambda: len(live_greenlets()) <= baseline, timeout=5)


class Broken(BaseNamespace):
    pass


class _Unbuildable(SocketIOController):
    broken = Broken

    @classmethod
    def namespace_classes(cls):
        raise RuntimeError("the engine cannot be built")


class _LookupRoot(TGController):
    """Reaches its Socket.IO controller through _lookup, as some apps do: the
    walk at app creation cannot see it, so its engine is built on a request."""

    @expose()
    def page(self):
        raise RuntimeError("a page error for the debugger")

    @expose()
    def _lookup(self, name, *remainder):
        return _Unbuildable(), remainder


def test_an_engine_failure_under_debug_is_a_plain_500_never_a_debugger_page(caplog):
    configurator = MinimalApplicationConfigurator()
    configurator.register(DebuggerConfigurationComponent)
    configurator.update_blueprint({"root_controller": _LookupRoot(), "helpers": {},
                                   "app_globals": type("G", (), {}), "debug": True})
    server = SocketIOServer(("127.0.0.1", 0), configurator.make_wsgi_app())
    server.start()
    try:
        url = "http://127.0.0.1:%d" % server.server_port
        page = requests.get(url + "/page", timeout=5)
        assert page.status_code == 500 and "a page error for the debugger" in page.text
        for _ in range(2):
            response = requests.get(url + "/socketio/?EIO=4&transport=polling", timeout=5)
            assert response.status_code == 500
            assert response.headers["Content-Type"] == "text/plain"
            assert response.text == "Internal Server Error"
    finally:
        server.stop(timeout=5)
    failures = [record for record in caplog.records
                if "Socket.IO engine unavailable" in record.getMessage()]
    assert len(failures) == 2 and not any(record.exc_info for record in failures)
    assert "the engine cannot be built" in failures[0].getMessage()
