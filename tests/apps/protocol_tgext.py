"""The server the official protocol test suites expect, as a TurboGears app
built with tgext.socketio.

Same behaviour as ``protocol_raw.py`` (raw python-socketio), written the way
an application uses this extension: ``BaseNamespace`` classes with
``on_<event>`` methods, a ``SocketIOController`` mounted on the root
controller, ``socketio.*`` options in the app config, served by
``tgext.socketio.server.SocketIOServer``. See ``docs/protocol-suites.rst``.

Usage::

    .venv/bin/python tests/apps/protocol_tgext.py [PORT] [--path socket.io]

``PORT`` defaults to 3000 (the suites connect to ``localhost:3000``);
``--path engine.io`` for the Engine.IO v4 suite, which requests
``/engine.io/`` (the controller is then mounted at ``engine_io``: TG
dispatches ``.`` in a path to ``_``).

What it does, as the suites' reference server (socket.io's own):

* ``pingInterval`` 300 ms, ``pingTimeout`` 200 ms, ``maxPayload`` 1000000;
* namespaces ``/`` and ``/custom``; on connect to either, emit
  ``auth`` with the connect payload (``{}`` when there is none);
* on ``/``: ``message`` is echoed back as ``message-back`` with the same
  arguments, ``message-with-ack`` is acknowledged with its arguments (through
  ``process_event``, as its name holds a ``-``).
"""
# gevent must patch the standard library before anything imports tg, so that
# TurboGears' request locals are greenlet-local.
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import logging  # noqa: E402

from tg import MinimalApplicationConfigurator, TGController  # noqa: E402

from tgext.socketio import BaseNamespace, SocketIOController  # noqa: E402
from tgext.socketio.server import SocketIOServer, check_monkey_patching  # noqa: E402

#: what the suites expect (test-suite.js: PING_INTERVAL, PING_TIMEOUT, maxPayload)
CONFIG = {
    "socketio.ping_interval": 0.3,
    "socketio.ping_timeout": 0.2,
    "socketio.max_http_buffer_size": 1000000,
    "socketio.cors_allowed_origins": "*",  # the suites can also run in a browser
}


class Main(BaseNamespace):
    """The namespace ``/``."""

    def recv_connect(self):
        self.emit("auth", {} if self.auth is None else self.auth)

    def on_message(self, *args):
        self.emit("message-back", *args)

    def process_event(self, packet):
        # "message-with-ack" is not an event name the on_<event> rule accepts
        # (letters, digits, "_" and spaces, as in 0.0.x): process_event, the
        # gevent-socketio dispatch hook, handles any other name.
        if packet["name"] == "message-with-ack":
            return tuple(packet["args"])  # one acknowledgement argument per item
        return super().process_event(packet)


class Custom(BaseNamespace):
    """The namespace ``/custom``."""

    def recv_connect(self):
        self.emit("auth", {} if self.auth is None else self.auth)


class ProtocolSocketIO(SocketIOController):
    default_namespace = Main
    custom = Custom


def make_app(path="socket.io"):
    """A minimal TG app (as tests/conftest.py build_app) with the controller
    mounted at ``path`` (``socket.io`` -> attribute ``socket_io``)."""
    root = TGController()
    root.__dict__[path.replace(".", "_")] = ProtocolSocketIO()
    configurator = MinimalApplicationConfigurator()
    configurator.update_blueprint(
        {"root_controller": root, "helpers": {}, "app_globals": type("Globals", (), {})}
    )
    configurator.update_blueprint(CONFIG)
    return configurator.make_wsgi_app()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", nargs="?", type=int, default=3000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--path", default="socket.io",
                        help="socket.io (Socket.IO v5 suite) or engine.io (Engine.IO v4 suite)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    path = args.path.strip("/")
    app = make_app(path)
    check_monkey_patching()
    server = SocketIOServer((args.host, args.port), app, resource=path)
    print("protocol_tgext: http://%s:%d/%s/" % (args.host, args.port, path), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
