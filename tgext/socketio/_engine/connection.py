"""One client connection (an Engine.IO session), as namespaces see it."""

import logging
import time

from .._config.keys import REQUEST_LOCALS_KEY

log = logging.getLogger("tgext.socketio.engine")

#: environ keys whose values refer back to the environ (see Connection.release)
_ENVIRON_CYCLES = (
    REQUEST_LOCALS_KEY,
    "tg.locals",
    "paste.registry",
    "webob._parsed_query_vars",
)


class Connection:
    """One client connection (an Engine.IO session): gevent-socketio's socket.

    ``id`` is the Engine.IO session id, ``environ`` the handshake's WSGI environ,
    ``request`` its TG request, ``session`` a dict shared by the connection's
    namespaces, ``active_ns`` the namespace instances by namespace name.
    """

    def __init__(self, eio_sid, environ):
        self.id = eio_sid
        self.environ = environ
        self.request_locals = environ.get(REQUEST_LOCALS_KEY)
        self.request = getattr(self.request_locals, "request", None)
        self.session = {}
        self.active_ns = {}
        #: when it opened (seconds since the epoch)
        self.opened_at = time.time()
        #: namespace connects refused so far (see MAX_REFUSED_CONNECTS)
        self.refused_connects = 0
        #: its budget of log lines, once it caused one (:mod:`.clientlog`)
        self.log = None

    def release(self):
        """Break the reference cycles of the handshake's request (the
        connection has ended), so that it is freed at once instead of waiting
        for the cycle collector: with thousands of clients leaving, that
        wait is memory the process keeps for minutes.
        """
        environ = self.environ
        if environ.get("socketio") is self:
            del environ["socketio"]
        # each of these refers back to the environ: TG's request locals and
        # registry (through the request), WebOb's parsed query string
        for key in _ENVIRON_CYCLES:
            environ.pop(key, None)
        self.request_locals = self.request = None
        if self.log is not None:
            self.log.close(log, self.id)

    @property
    def user(self):
        """The TG user id of the handshake (``None`` for an anonymous one)."""
        return user_of(self.environ)

    @property
    def sessid(self):
        """The connection id, under gevent-socketio's name."""
        return self.id

    def __repr__(self):
        return "<Connection %s %s>" % (self.id, sorted(self.active_ns))


def user_of(environ):
    """The TG user id (repoze.who's ``repoze.who.userid``) of a request's
    ``environ``, or ``None``."""
    identity = (environ or {}).get("repoze.who.identity") or {}
    return identity.get("repoze.who.userid")
