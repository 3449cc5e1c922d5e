"""The ``socketio.*`` options of the application config: table and parser.

Every engine option lives in ``[app:main]`` under the ``socketio.`` prefix,
followed by python-socketio's own keyword name, so python-socketio's
documentation explains what each one does. ``OPTIONS`` is the single source of
truth: the parser, the documentation's configuration reference
(``docs/_ext/socketio_options.py``) and their tests all read it.
"""

import difflib
import re

from tg.support.converters import asbool, aslist

from .._serving.admission import SERVER_OPTIONS
from ..exceptions import ConfigurationError
from .keys import PUBSUB_CHANNEL_PREFIX
from .values import positive_int as _positive_int
from .values import seconds as _seconds

PREFIX = "socketio."

#: what a ``socketio.`` key misplaced in ``[app:main]`` may have meant
_SERVER_SECTION_KEYS = dict.fromkeys(
    ("host", "port", "socketio_resource", "workers")
    + tuple(name for name, *_rest in SERVER_OPTIONS),
    "[server:main]",
)

_NODE_ID = re.compile(r"[A-Za-z0-9_]{1,16}\Z")


def _origins(value):
    """``*`` allows any origin; a list allows those; unset means same origin."""
    if value is None:
        return None
    origins = aslist(value, ",")
    origins = [item for origin in origins for item in aslist(origin)]
    if origins == ["*"]:
        return "*"
    for origin in origins:
        if "://" not in origin:
            raise ValueError(value)
    return origins


def _transports(value):
    transports = [item for item in aslist(value, ",") for item in aslist(item)]
    if not transports or set(transports) - {"polling", "websocket"}:
        raise ValueError(value)
    return transports


def _queue_channel(value):
    value = str(value).strip()
    if not value or value.startswith(PUBSUB_CHANNEL_PREFIX):
        raise ValueError(value)
    return value


def _optional_url(value):
    if value in (None, ""):
        return None
    value = str(value)
    if "://" not in value:
        raise ValueError(value)
    return value


def _node_id(value):
    value = str(value).strip()
    if value and not _NODE_ID.match(value):
        raise ValueError(value)
    return value or None


def _count_or_off(value):
    """A whole number of at least 0, or ``off`` (None)."""
    if value is None or str(value).strip().lower() in ("off", "none", ""):
        return None
    if isinstance(value, float) or int(value) < 0:
        raise ValueError(value)
    return int(value)


def _seconds_or_off(value):
    """A positive number of seconds, or ``off`` (None)."""
    if value is None or str(value).strip().lower() in ("off", "none", "", "0"):
        return None
    return _seconds(value)


#: key, default, converter, what a value must be (for errors), help for the docs
OPTIONS = (
    (
        "cors_allowed_origins",
        None,
        _origins,
        "a list of origins such as https://example.com, or *",
        "origins allowed to connect from a browser; unset allows only the "
        "page's own origin, ``*`` allows every origin",
    ),
    (
        "ping_interval",
        25,
        _seconds,
        "a positive number of seconds",
        "seconds between the server's pings",
    ),
    (
        "ping_timeout",
        20,
        _seconds,
        "a positive number of seconds",
        "seconds to wait for a client's pong before dropping it",
    ),
    (
        "max_http_buffer_size",
        1000000,
        _positive_int,
        "a positive whole number of bytes",
        "largest message, in bytes, accepted from a client",
    ),
    (
        "max_decode_packets",
        1000,
        _positive_int,
        "a positive whole number",
        "largest number of packets accepted in one long-polling request "
        "(socket.io-client batches a burst of emits into one)",
    ),
    (
        "max_queued_events",
        256,
        _positive_int,
        "a positive whole number",
        "events of one client to one namespace waiting for their handler; past "
        "it the client gets the error ``too_many_events`` and is disconnected "
        "from the namespace",
    ),
    (
        "max_queued_packets",
        1000,
        _positive_int,
        "a positive whole number",
        "packets waiting to be sent to one client (one that does not read); "
        "past it the client is disconnected",
    ),
    (
        "max_rooms",
        1000,
        _positive_int,
        "a positive whole number",
        "rooms one client may be in in one namespace (RoomsMixin.join); past "
        "it join() returns False and the client gets the error too_many_rooms",
    ),
    (
        "max_subscriptions",
        100,
        _positive_int,
        "a positive whole number",
        "PubSub channels one client may subscribe to in one namespace; past "
        "it a subscribe gets the error too_many_subscriptions and the ack false",
    ),
    (
        "max_publication_bytes",
        1000000,
        _positive_int,
        "a positive whole number of bytes",
        "the JSON of one PubSub publication; a larger one is refused "
        "(publication_too_large for a client, PublishError outside a namespace)",
    ),
    (
        "max_queued_bytes",
        16 * 1024 * 1024,
        _positive_int,
        "a positive whole number of bytes",
        "bytes waiting to be sent to one client (one that reads slower than "
        "it is sent to); past it the client is disconnected. A frame sent to "
        "many clients is held once, however many wait for it",
    ),
    (
        "max_attachments",
        10,
        _positive_int,
        "a positive whole number",
        "binary attachments one event may announce",
    ),
    (
        "max_attachment_bytes",
        None,
        _positive_int,
        "a positive whole number of bytes",
        "bytes of all the attachments of one event; unset: ``max_http_buffer_size``",
    ),
    (
        "malloc_above",
        None,
        _count_or_off,
        "a whole number of sessions, or off",
        "opt-in: open sessions (of the whole process) past which new Python "
        "objects come from the C library's malloc instead of CPython's "
        "allocator, until no more are open: an event costs 6-16% more "
        "meanwhile, and more memory goes back to the system after a wave of "
        "clients (see Bad input and limits, beside PYTHONMALLOC=malloc); "
        "unset or ``off``: never",
    ),
    (
        "connection_state_recovery",
        None,
        _seconds_or_off,
        "a positive number of seconds, or off",
        "seconds a client whose transport dropped may come back with its sid, "
        "rooms, session, PubSub subscriptions and the events it missed "
        "(socket.io-client 4.6+ does it by itself; see Connection state "
        "recovery); unset or ``off``: never, as Node's server",
    ),
    (
        "recovery_max_events",
        10000,
        _positive_int,
        "a positive whole number",
        "with connection state recovery: events kept, per SocketIOController "
        "and process, for dropped clients to get what they missed; a client "
        "that missed older ones starts afresh",
    ),
    (
        "recovery_max_bytes",
        16 * 1024 * 1024,
        _positive_int,
        "a positive whole number of bytes",
        "with connection state recovery: bytes of the events kept (encoded), "
        "per SocketIOController and process",
    ),
    (
        "transports",
        ["polling", "websocket"],
        _transports,
        "polling, websocket or both",
        "transports clients may use",
    ),
    (
        "allow_upgrades",
        True,
        asbool,
        "true or false",
        "let long-polling clients upgrade to WebSocket",
    ),
    (
        "http_compression",
        True,
        asbool,
        "true or false",
        "compress long-polling responses",
    ),
    (
        "message_queue",
        None,
        _optional_url,
        "a URL such as redis://localhost:6379/0",
        "message queue shared by every process, for emits and broadcasts across "
        "processes; unset keeps them in this process",
    ),
    (
        "channel",
        "socketio",
        _queue_channel,
        "a channel name not starting with %s" % PUBSUB_CHANNEL_PREFIX,
        "channel name on the message queue (PubSub channels start with %s "
        "on the backend: this one may not)" % PUBSUB_CHANNEL_PREFIX,
    ),
    (
        "node_id",
        None,
        _node_id,
        "1 to 16 letters, digits or _",
        "name of this server behind a load balancer: every session id it makes "
        "starts with it, for sticky routing (see Deployment)",
    ),
    (
        "metrics",
        False,
        asbool,
        "true or false",
        "opt-in: count sessions, events, handler times, errors, refusals and "
        "more as Prometheus metrics, served by a ``MetricsController`` the app "
        "mounts (see Metrics; needs ``pip install tgext.socketio[metrics]``)",
    ),
)


def parse_options(app_config):
    """Read and check every ``socketio.*`` option of ``app_config``.

    :param app_config: ``tg.config`` or any mapping of ini keys.
    :returns: a dict of option name (without prefix) to converted value.
    :raises ConfigurationError: naming the key, for the first bad value.
    """
    check_known_keys(
        (key for key in app_config if isinstance(key, str) and key.startswith(PREFIX)),
        [name for name, *_rest in OPTIONS],
        "[app:main]",
        PREFIX,
        elsewhere=_SERVER_SECTION_KEYS,
    )
    options = {}
    for name, default, convert, expected, _help in OPTIONS:
        key = PREFIX + name
        raw = app_config.get(key, default)
        if raw is default:
            options[name] = default
            continue
        try:
            options[name] = convert(raw)
        except (TypeError, ValueError):
            raise ConfigurationError(
                "%s = %r is not %s; set it to %s in [app:main] of your .ini "
                "file." % (key, raw, expected, expected)
            ) from None
    return options


def check_known_keys(keys, known_names, section, prefix="", elsewhere=None):
    """Refuse the first of ``keys`` that is not ``prefix`` + one of ``known_names``.

    A misspelled setting would otherwise be ignored in silence, leaving its
    default in force; the message names the nearest known key (nearest by
    the part after ``prefix``, which every key shares).

    :param section: where the keys are written, for the message.
    :param elsewhere: ``{name: section}`` of settings that belong in another
        section (``socketio.socketio_resource`` in ``[app:main]``).
    :raises ConfigurationError: naming the key and the nearest known one.
    """
    known_names = sorted(known_names)
    known_keys = {prefix + name for name in known_names}
    for key in sorted(set(keys) - known_keys):
        name = key[len(prefix) :]
        nearest = difflib.get_close_matches(name, known_names, n=1, cutoff=0.6)
        if elsewhere and name in elsewhere:
            hint = "%s belongs in %s, without the %s prefix." % (
                name,
                elsewhere[name],
                prefix,
            )
        elif nearest:
            hint = "did you mean %s%s?" % (prefix, nearest[0])
        else:
            hint = "the settings are %s." % ", ".join(
                prefix + name for name in known_names
            )
        raise ConfigurationError(
            "%s in %s of your .ini file is not a tgext.socketio setting; %s"
            % (key, section, hint)
        )
