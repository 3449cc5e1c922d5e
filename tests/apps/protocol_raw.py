"""The server the official protocol test suites expect, on raw python-socketio.

The baseline for ``protocol_tgext.py``: the same behaviour written directly on
``socketio.Server`` (no TurboGears, no tgext.socketio), so that a test of the
suites that fails on both is a python-socketio limitation and one that fails
only on ``protocol_tgext.py`` is ours. See ``docs/protocol-suites.rst``.

Usage::

    .venv/bin/python tests/apps/protocol_raw.py [PORT] [--path socket.io]

``PORT`` defaults to 3000 (the suites connect to ``localhost:3000``);
``--path engine.io`` for the Engine.IO v4 suite, which requests
``/engine.io/``. ``--server tgext`` serves it with
``tgext.socketio.server.SocketIOServer`` instead of gevent's plain
``WSGIServer`` + gevent-websocket's ``WebSocketHandler``.

What it does, as the suites' reference server (socket.io's own):

* ``pingInterval`` 300 ms, ``pingTimeout`` 200 ms, ``maxPayload`` 1000000;
* namespaces ``/`` and ``/custom``; on connect to either, emit
  ``auth`` with the connect payload (``{}`` when there is none);
* on ``/``: ``message`` is echoed back as ``message-back`` with the same
  arguments, ``message-with-ack`` is acknowledged with its arguments.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import logging  # noqa: E402

import socketio  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402
from geventwebsocket.handler import WebSocketHandler  # noqa: E402

#: what the suites expect (test-suite.js: PING_INTERVAL, PING_TIMEOUT, maxPayload)
PING_INTERVAL = 0.3
PING_TIMEOUT = 0.2
MAX_PAYLOAD = 1000000


def make_server_app(path="socket.io"):
    """Return the WSGI app: a ``socketio.Server`` behind ``socketio.WSGIApp``."""
    sio = socketio.Server(
        async_mode="gevent",
        ping_interval=PING_INTERVAL,
        ping_timeout=PING_TIMEOUT,
        max_http_buffer_size=MAX_PAYLOAD,
        cors_allowed_origins="*",  # the suites can also run in a browser
        namespaces=["/", "/custom"],
        # send CONNECT before the connect handler runs, so that its "auth"
        # emit reaches the client after the handshake (as the suite expects)
        always_connect=True,
    )

    @sio.on("connect")
    def connect(sid, environ, auth):
        sio.emit("auth", {} if auth is None else auth, to=sid)

    @sio.on("message")
    def message(sid, *args):
        sio.emit("message-back", args, to=sid)

    @sio.on("message-with-ack")
    def message_with_ack(sid, *args):
        return args

    @sio.on("connect", namespace="/custom")
    def connect_custom(sid, environ, auth):
        sio.emit("auth", {} if auth is None else auth, to=sid, namespace="/custom")

    return socketio.WSGIApp(sio, socketio_path=path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", nargs="?", type=int, default=3000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--path", default="socket.io",
                        help="socket.io (Socket.IO v5 suite) or engine.io (Engine.IO v4 suite)")
    parser.add_argument("--server", choices=("pywsgi", "tgext"), default="pywsgi")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    app = make_server_app(args.path.strip("/"))
    if args.server == "tgext":
        from tgext.socketio.server import SocketIOServer

        server = SocketIOServer((args.host, args.port), app, resource=args.path)
    else:
        server = WSGIServer((args.host, args.port), app, handler_class=WebSocketHandler,
                            log=None)
    print("protocol_raw: http://%s:%d/%s/ (%s)" % (args.host, args.port,
                                                   args.path.strip("/"), args.server),
          flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
