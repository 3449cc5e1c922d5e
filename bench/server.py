"""One benchmark server: ``python bench/server.py tgext|raw|echo|...``.

Every kind answers the event ``ping`` on the namespace ``/pingpong`` with the
event ``pong`` ``{"sound": "pong"}`` and is served by the same
``tgext.socketio.server.SocketIOServer`` under ``/socketio``, so only the WSGI
application differs:

``tgext``
    the ping-pong example (``examples/pingpong/app.py``): the whole TurboGears
    stack, a ``SocketIOController`` and a ``SocketIOTGNamespace`` whose
    ``on_ping`` goes through ``@validate``.
``raw``
    python-socketio alone: a ``socketio.Namespace`` in a ``socketio.WSGIApp``.
``echo``
    no Socket.IO at all, the ceiling of Python on this stack: a WSGI app that
    takes gevent-websocket's connection, sends the Engine.IO open packet,
    answers the namespace join, then answers every message with the same
    prebuilt ``pong`` frame, decoding nothing (WebSocket only).
``tgext-recovery``
    ``tgext`` with ``socketio.connection_state_recovery`` on (120 s): every
    event sent is logged and carries its offset.
``tgext-metrics``
    ``tgext`` with ``socketio.metrics`` on: every session, event, handler
    time and ack counted (bench/metrics.py).
``tgext-pymalloc``, ``tgext-malloc``
    ``tgext`` with ``socketio.malloc_above`` ``off`` (new objects always from
    CPython's allocator) or ``0`` (always from the C library's malloc).

The server listens on 127.0.0.1 (port 0 picks a free one), prints its port on
a line of its own once listening, and serves until killed.
"""

from gevent import monkey

monkey.patch_all()  # before tg is imported: its request locals must be greenlet-local

import argparse  # noqa: E402
import functools  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import socketio  # noqa: E402

from tgext.socketio.server import SocketIOServer, check_monkey_patching  # noqa: E402

RESOURCE = "socketio"
PINGPONG_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "pingpong"
)


def tgext_app(**settings):
    """The ping-pong example app, as ``gearbox serve`` would build it."""
    sys.path.insert(0, PINGPONG_DIR)
    from app import make_app

    check_monkey_patching()
    return make_app(**settings)


class PingPong(socketio.Namespace):
    def on_ping(self, sid, attack):
        self.emit("pong", {"sound": "pong"}, to=sid)


def raw_app():
    """The same ping-pong on python-socketio with nothing in between."""
    sio = socketio.Server(async_mode="gevent")
    sio.register_namespace(PingPong("/pingpong"))
    return socketio.WSGIApp(sio, socketio_path=RESOURCE)


ECHO_OPEN = (
    '0{"sid":"echo","upgrades":[],"pingInterval":25000,"pingTimeout":20000,'
    '"maxPayload":1000000}'
)
ECHO_JOINED = '{"sid":"echo"}'
ECHO_PONG = '42/pingpong,["pong",{"sound":"pong"}]'


def echo_app():
    """A WebSocket loop and nothing else: receive, send."""

    def app(environ, start_response):
        websocket = environ.get("wsgi.websocket")
        if websocket is None:
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [b"WebSocket only"]
        websocket.send(ECHO_OPEN)
        while True:
            message = websocket.receive()
            if message is None:
                return []
            if message.startswith("42"):
                websocket.send(ECHO_PONG)
            elif message.startswith("40"):  # join: "40/pingpong," + payload
                websocket.send(message + ECHO_JOINED)

    return app


APPS = {
    "tgext": tgext_app,
    "raw": raw_app,
    "echo": echo_app,
    # the ping-pong example with new objects always from CPython's allocator,
    # or always from malloc (bench/leave.py, bench/allocator.py)
    "tgext-pymalloc": functools.partial(tgext_app, **{"socketio.malloc_above": "off"}),
    "tgext-malloc": functools.partial(tgext_app, **{"socketio.malloc_above": "0"}),
    # the opt-in allocator switch as docs/limits.rst suggests it (bench/leave.py)
    "tgext-malloc-above": functools.partial(
        tgext_app, **{"socketio.malloc_above": "1000"}
    ),
    # connection state recovery on (bench/recovery.py)
    "tgext-recovery": functools.partial(
        tgext_app, **{"socketio.connection_state_recovery": "120"}
    ),
    # Prometheus metrics on (bench/metrics.py)
    "tgext-metrics": functools.partial(tgext_app, **{"socketio.metrics": "true"}),
}


def loopback_limits():
    """The server's caps lifted: every load generator client comes from
    127.0.0.1, past the 1,000 connections and sessions allowed per address.
    (Nothing for a revision older than the caps: bench/versus.py.)"""
    import inspect

    if "limits" not in inspect.signature(SocketIOServer).parameters:
        return {}
    from tgext.socketio.server import parse_server_options  # (any revision)

    lifted = str(10**6)
    return {
        "limits": parse_server_options(
            {
                "max_connections": lifted,
                "max_connections_per_address": lifted,
                "max_sessions": lifted,
                "max_sessions_per_address": lifted,
            }
        )
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=sorted(APPS))
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    server = SocketIOServer(
        ("127.0.0.1", args.port), APPS[args.kind](), resource=RESOURCE, **loopback_limits()
    )
    server.init_socket()
    print(server.server_port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
