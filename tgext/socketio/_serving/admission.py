"""Who gets in: the server's timeouts, and its caps on connections and
Engine.IO sessions, per process and per client address.

The options live in ``[server:main]`` beside ``host`` and ``port``
(:data:`SERVER_OPTIONS`); the paste runner and the gunicorn worker read them
from there. A connection that sends no complete request header within
``header_timeout`` seconds is answered 408 and closed; one idle between two
requests for ``keepalive_timeout`` seconds is closed. Past a cap, a new
connection or a new session is answered 503 and closed, with one log line
(a summary when they pour in). A client's address is the TCP peer's, or,
when the peer is one of ``trusted_proxies``, the last address of
``X-Forwarded-For`` that is not a trusted proxy.

No TurboGears here: the server module reads this before gevent has patched
the standard library.
"""

import ipaddress
import logging

from .._config.values import positive_int, seconds
from .clientlog import BurstLog

log = logging.getLogger("tgext.socketio.admission")


def _networks(value):
    """Addresses or networks (``10.0.0.0/8``), separated by commas or spaces."""
    if value is None:
        return ()
    items = [item for part in str(value).split(",") for item in part.split()]
    return tuple(ipaddress.ip_network(item, strict=False) for item in items)


#: ``[server:main]`` options of the timeouts and caps: (key, default,
#: converter, what a value must be, meaning)
SERVER_OPTIONS = (
    (
        "header_timeout",
        10.0,
        seconds,
        "a positive number of seconds",
        "a connection that has not sent a complete request header (request "
        "line and headers) this long after it opened, or after its request "
        "line, is answered 408 and closed",
    ),
    (
        "keepalive_timeout",
        5.0,
        seconds,
        "a positive number of seconds",
        "a keep-alive connection idle this long between two requests is closed",
    ),
    (
        "max_connections",
        10000,
        positive_int,
        "a positive whole number",
        "open connections of the process; past it a new one is answered 503",
    ),
    (
        "max_connections_per_address",
        5000,
        positive_int,
        "a positive whole number",
        "open connections from one address (not counted for trusted_proxies)",
    ),
    (
        "max_sessions",
        10000,
        positive_int,
        "a positive whole number",
        "Engine.IO sessions (clients) of the process; past it a new client is "
        "answered 503",
    ),
    (
        "max_sessions_per_address",
        5000,
        positive_int,
        "a positive whole number",
        "Engine.IO sessions of one client address",
    ),
    (
        "trusted_proxies",
        None,
        _networks,
        "addresses or networks, separated by commas",
        "proxies (nginx, HAProxy) whose X-Forwarded-For names the client's "
        "address; unset: none, the TCP peer is the client",
    ),
)


def parse_server_options(settings, section="[server:main]"):
    """The timeouts and caps of ``settings`` (keys of ``section``), converted.

    :raises ConfigurationError: naming the key, for a bad value.
    """
    options = {}
    for name, default, convert, expected, _help in SERVER_OPTIONS:
        raw = settings.get(name)
        if raw is None or raw == "":
            options[name] = convert(default) if name == "trusted_proxies" else default
            continue
        try:
            options[name] = convert(raw)
        except (TypeError, ValueError):
            from ..exceptions import ConfigurationError  # imports tg: only when failing

            raise ConfigurationError(
                "%s = %r is not %s; set it to %s in %s of your .ini file."
                % (name, raw, expected, expected, section)
            ) from None
    return options


class Admission:
    """A server's counts of open connections and sessions, and its caps.

    :param options: :func:`parse_server_options`'s result.
    """

    def __init__(self, options):
        self.header_timeout = options["header_timeout"]
        self.keepalive_timeout = options["keepalive_timeout"]
        self._max_connections = options["max_connections"]
        self._max_connections_per_address = options["max_connections_per_address"]
        self._max_sessions = options["max_sessions"]
        self._max_sessions_per_address = options["max_sessions_per_address"]
        self._trusted = options["trusted_proxies"]
        self.connections = 0
        self.sessions = 0
        self._connections_of = {}  # address -> open connections
        self._sessions_of = {}  # address -> open sessions
        self._refusals = BurstLog(
            log, 20, 60.0, "refused %d more clients in the last %g s (%s)"
        )

    # -- connections --------------------------------------------------------------

    def admit_connection(self, peer):
        """Count a new connection from ``peer`` (an address); ``False`` when
        a cap refuses it (not counted then)."""
        if self.connections >= self._max_connections:
            return self._refuse(peer, "max_connections", self._max_connections)
        counted = not self.is_trusted(peer)
        if counted:
            open_here = self._connections_of.get(peer, 0)
            if open_here >= self._max_connections_per_address:
                return self._refuse(
                    peer,
                    "max_connections_per_address",
                    self._max_connections_per_address,
                )
            self._connections_of[peer] = open_here + 1
        self.connections += 1
        return True

    def release_connection(self, peer):
        self.connections -= 1
        _decrement(self._connections_of, peer)

    # -- sessions ---------------------------------------------------------------

    def admit_session(self, address):
        """A :class:`SessionTicket` for a new Engine.IO session of the client
        at ``address``, or ``None`` when a cap refuses it."""
        if self.sessions >= self._max_sessions:
            self._refuse(address, "max_sessions", self._max_sessions)
            return None
        if self._sessions_of.get(address, 0) >= self._max_sessions_per_address:
            self._refuse(
                address, "max_sessions_per_address", self._max_sessions_per_address
            )
            return None
        return SessionTicket(self, address)

    def _open_session(self, address):
        self.sessions += 1
        self._sessions_of[address] = self._sessions_of.get(address, 0) + 1

    def _close_session(self, address):
        self.sessions -= 1
        _decrement(self._sessions_of, address)

    # -- addresses --------------------------------------------------------------

    def is_trusted(self, address):
        if not self._trusted:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._trusted)

    def client_address(self, environ):
        """The client's address of a request (see the module)."""
        peer = environ.get("REMOTE_ADDR") or ""
        if not self.is_trusted(peer):
            return peer
        forwarded = environ.get("HTTP_X_FORWARDED_FOR", "")
        for hop in reversed([item.strip() for item in forwarded.split(",")]):
            if hop and not self.is_trusted(hop):
                return hop[:64]
        return peer

    #: what counts refusals (``socketio.metrics`` of an app served), or None
    metrics = None

    def _refuse(self, address, key, limit):
        if self.metrics is not None:
            self.metrics.refuse(key)
        if self._refusals.allow(key):
            log.warning(
                "refused a client from %r: %s is %d (answered 503)",
                address[:64],
                key,
                limit,
            )
        return False


class SessionTicket:
    """Counts one Engine.IO session against its client's address, from its
    opening (:meth:`open`) to its end (:meth:`close`)."""

    __slots__ = ("_admission", "_address", "_state")

    def __init__(self, admission, address):
        self._admission = admission
        self._address = address
        self._state = 0  # 0: not opened, 1: open, 2: closed

    def open(self):
        if self._state == 0:
            self._state = 1
            self._admission._open_session(self._address)

    def close(self):
        if self._state == 1:
            self._admission._close_session(self._address)
        self._state = 2


def _decrement(counts, key):
    count = counts.get(key)
    if count is None:
        return
    if count <= 1:
        del counts[key]
    else:
        counts[key] = count - 1
