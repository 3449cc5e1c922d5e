"""gevent-websocket's (and gevent's WSGI handler's) private names, class swaps
and skipped overrides, in one place.

Checked against gevent-websocket 0.10.1 (its last release) and gevent
23.9.0 to 26.9.0. The package's handler subclasses :class:`Handler`; its
WebSocket connections become :func:`adopted <adopt_websocket>` instances
of a subclass of gevent-websocket's ``WebSocket`` that replaces its
``read_message`` (:mod:`tgext.socketio._serving.websocket`).
"""

from gevent.pywsgi import WSGIHandler
from geventwebsocket.handler import WebSocketHandler
from geventwebsocket.websocket import WebSocket

from . import relies_on, rename_hooks

LIBRARY = "gevent-websocket"
CHECKED = "0.10.1"
GEVENT = "gevent"
GEVENT_CHECKED = "23.9.0-26.9.0"

relies_on(GEVENT, GEVENT_CHECKED, WSGIHandler, "_handle_client_error", ["self", "ex"])
relies_on(GEVENT, GEVENT_CHECKED, WSGIHandler, "run_application", ["self"])
relies_on(GEVENT, GEVENT_CHECKED, WSGIHandler, "log_request", ["self"])
relies_on(LIBRARY, CHECKED, WebSocketHandler, "upgrade_connection", ["self"])
relies_on(LIBRARY, CHECKED, WebSocket, "read_message", ["self"])
relies_on(LIBRARY, CHECKED, WebSocket, "receive", ["self"])
relies_on(LIBRARY, CHECKED, WebSocket, "current_app")
relies_on(LIBRARY, CHECKED, WebSocket, "handle_close", ["self", "header", "payload"])
relies_on(LIBRARY, CHECKED, WebSocket, "handle_ping", ["self", "header", "payload"])
relies_on(LIBRARY, CHECKED, WebSocket, "send_frame", ["self", "message", "opcode"])
relies_on(LIBRARY, CHECKED, WebSocket, "__slots__")


def adopt_websocket(websocket, websocket_class):
    """Make ``websocket``, which gevent-websocket's handler built, a
    ``websocket_class`` (a subclass declaring no new slots: same layout, so
    the connection changes class in place). Others are left as they are."""
    if type(websocket) is WebSocket:
        websocket.__class__ = websocket_class
    return websocket


class Handler(WebSocketHandler):
    """gevent-websocket's handler with gevent's error hook under a name of
    ours (:meth:`handle_client_error`), and its two skips of
    gevent-websocket's own behaviour."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        rename_hooks(cls, {"handle_client_error": "_handle_client_error"})

    def handle_client_error(self, error):
        """An invalid request: ``(status, body)`` to answer, or ``None``."""
        return WSGIHandler._handle_client_error(self, error)

    def run_plain_application(self):
        """Run the app as plain HTTP: gevent's, without gevent-websocket's upgrade."""
        return WSGIHandler.run_application(self)

    def log_plain_request(self):
        """Log as the next handler after gevent-websocket's in the class's
        order does (gevent's, or gunicorn's), skipping gevent-websocket's,
        which logs through a logger it rewires."""
        return super(WebSocketHandler, self).log_request()
