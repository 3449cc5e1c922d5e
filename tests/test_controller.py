"""SocketIOController: namespace discovery, pages beside Socket.IO, mount
points, and Engine.IO's own answers under the resource."""
import pytest
import requests
from tg import TGController, expose, request

from tgext.socketio import BaseNamespace, SocketIOController
from tgext.socketio.exceptions import ConfigurationError

from .conftest import build_app, controller_for


class Hello(BaseNamespace):
    def on_hello(self, name):
        return "hello %s" % name


class InheritedNamespaces(SocketIOController):
    hello = Hello


class PageController(InheritedNamespaces):
    other = Hello

    @expose()
    def page(self, **kw):
        return "a normal page"


def test_namespaces_are_collected_from_class_attributes_including_inherited():
    assert PageController.namespace_classes() == {"/hello": Hello, "/other": Hello}


def test_default_namespace_serves_slash_only():
    controller_class = type("C", (SocketIOController,), {"default_namespace": Hello})
    assert controller_class.namespace_classes() == {"/": Hello}


def test_other_exposed_methods_are_normal_pages(live_server):
    server = live_server(build_app(PageController()))
    response = requests.get(server.url + "/socketio/page", timeout=5)
    assert response.status_code == 200
    assert response.text == "a normal page"
    client = server.connect(namespaces=["/other"])
    assert client.call("hello", "page", namespace="/other", timeout=5) == "hello page"


def test_request_without_eio_gets_engineio_400_not_tg_404(live_server):
    server = live_server(build_app(PageController()))
    response = requests.get(server.url + "/socketio/", timeout=5)
    assert response.status_code == 400
    assert "unsupported version" in response.text


def test_handshake_under_resource_is_engineio_open_packet(live_server):
    server = live_server(build_app(PageController()))
    response = requests.get(server.url + "/socketio/?EIO=4&transport=polling", timeout=5)
    assert response.status_code == 200
    assert response.text.startswith('0{"sid":')


def test_unknown_path_under_resource_without_eio_is_404(live_server):
    server = live_server(build_app(PageController()))
    response = requests.get(server.url + "/socketio/nothing/here", timeout=5)
    assert response.status_code == 404


def test_controller_mounted_at_nested_path_with_matching_resource(serve):
    for transport in ("polling", "websocket", "upgrade"):
        server = serve({"hello": Hello}, mount="chat/live")
        client = server.connect(namespaces=["/hello"], transport=transport)
        assert client.call("hello", transport, namespace="/hello", timeout=5) == (
            "hello " + transport
        )


def test_socket_io_resource_serves_the_javascript_clients_default_path(serve):
    server = serve({"hello": Hello}, mount="socket.io")
    assert server.resource == "/socket.io"
    client = server.connect(namespaces=["/hello"], transport="upgrade")
    assert client.call("hello", "io", namespace="/hello", timeout=5) == "hello io"
    assert client.transport() == "websocket"


def test_pages_outside_the_resource_are_never_upgraded(live_server):
    class Root(TGController):
        socketio = controller_for({"hello": Hello})

        @expose()
        def plain(self):
            return "plain"

    server = live_server(build_app(root=Root()))
    response = requests.get(
        server.url + "/plain",
        headers={"Upgrade": "websocket", "Connection": "Upgrade",
                 "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                 "Sec-WebSocket-Version": "13"},
        timeout=5,
    )
    assert response.status_code == 200
    assert response.text == "plain"


def test_two_controllers_have_separate_engines(live_server):
    class Root(TGController):
        first = controller_for({"hello": Hello})
        second = controller_for({"hello": Hello})

    app = build_app(root=Root())
    first = live_server(app, resource="first")
    second = live_server(app, resource="second")
    assert first.connect(namespaces=["/hello"]).call(
        "hello", "1", namespace="/hello", timeout=5) == "hello 1"
    assert second.connect(namespaces=["/hello"]).call(
        "hello", "2", namespace="/hello", timeout=5) == "hello 2"
    assert Root.first.engine is not Root.second.engine


def test_accepted_sockets_get_tcp_nodelay():
    # Nagle's algorithm would hold an ack written right after an emit until the
    # client's delayed ACK (~44 ms a round trip): every accepted socket opts out.
    import socket

    from tgext.socketio.server import SocketIOHandler, SocketIOServer

    seen = []

    class RecordingHandler(SocketIOHandler):
        def __init__(self, sock, address, server, *args, **kwargs):
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            super().__init__(sock, address, server, *args, **kwargs)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    server = SocketIOServer(("127.0.0.1", 0), app, handler_class=RecordingHandler)
    server.start()
    try:
        url = "http://127.0.0.1:%d/" % server.server_port
        assert requests.get(url, timeout=5).text == "ok"
    finally:
        server.stop()
    assert seen and all(seen)


@pytest.mark.parametrize("content_type", [None, "text/plain;charset=UTF-8",
                                          "application/x-www-form-urlencoded"])
def test_polling_post_body_reaches_engineio_whatever_its_content_type(
    live_server, content_type
):
    # WebOb parses a POST without Content-Type (or a form one) as a form
    # while TG dispatches; Engine.IO must still read the packets.
    server = live_server(build_app(PageController()))
    base = server.url + "/socketio/?EIO=4&transport=polling"
    eio_sid = requests.get(base, timeout=5).text.split('"sid":"')[1].split('"')[0]
    session = base + "&sid=" + eio_sid
    headers = {"Content-Type": content_type} if content_type else {}
    response = requests.post(session, data="40/hello,", headers=headers, timeout=5)
    assert response.text == "OK"
    assert requests.get(session, timeout=5).text.startswith('40/hello,{"sid":')


def test_long_polling_requests_of_a_session_skip_the_tg_stack(serve, monkeypatch):
    """TG's stack runs for the handshake only: later polls of the session
    go straight to its engine (they cost 2.5x raw python-socketio's round
    trip when every poll went through TG), and still see the handshake's
    TG context."""
    from tgext.socketio.controller import SocketIOController

    handed_off = []
    original = SocketIOController._hand_off_to_engine

    def counting(self):
        handed_off.append(request.environ.get("QUERY_STRING"))
        return original(self)

    monkeypatch.setattr(SocketIOController, "_hand_off_to_engine", counting)

    class Who(BaseNamespace):
        def on_path(self):
            return request.path

    server = serve({"who": Who})
    client = server.connect(namespaces=["/who"], transport="polling")
    for _ in range(5):
        assert client.call("path", namespace="/who", timeout=5) == "/socketio/"
    # handshakes only (LiveServer's readiness probe and the client's): no
    # request carrying a session id went through TG
    assert handed_off and not [query for query in handed_off if "sid=" in query]


def test_a_keep_alive_connection_serves_tg_after_a_direct_poll(serve):
    """A poll answered by the engine directly leaves the connection ready for
    the next request, which may go through TG again (gevent's handler asserts
    that no result is left over)."""
    import json

    server = serve({"echo": BaseNamespace})
    http = requests.Session()
    base = server.url + "/socketio/?EIO=4&transport=polling"
    for _ in range(3):
        opened = http.get(base, timeout=5)  # through TG: a handshake
        sid = json.loads(opened.text[1:])["sid"]
        joined = http.post(base + "&sid=" + sid, data="40/echo,", timeout=5,
                           headers={"Content-Type": "text/plain;charset=UTF-8"})
        assert joined.status_code == 200  # straight to the engine
    assert http.get(server.url + "/socketio/?sid=nope", timeout=5).status_code == 400
    http.close()


def test_mount_paths_are_found_when_the_app_is_made_nested_and_dotted():
    from tgext.socketio._engine.runtime import runtime_of

    nested = build_app(controller_for({"hello": Hello}), mount="chat/live")
    dotted = build_app(controller_for({"hello": Hello}), mount="socket.io")
    assert runtime_of(nested.app_config).mount_paths == ["/chat/live"]
    runtime = runtime_of(dotted.app_config)
    assert runtime.mount_paths == ["/socket_io"]
    runtime.check_mounted_at("/socket.io")  # TG dispatches socket.io to socket_io
    with pytest.raises(ConfigurationError) as error:
        runtime.check_mounted_at("/socketio")
    assert str(error.value) == (
        "socketio_resource in [server:main] is socketio, but the app's "
        "SocketIOController is mounted at /socket_io: set socketio_resource = "
        "socket_io (or mount the controller at /socketio)."
    )
