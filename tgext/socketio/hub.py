"""The pub/sub channels of one app: one backend subscription per channel per
process, fanned out to that process's subscribers.

anypubsub gives each subscriber a backend subscription of its own (a Redis
connection and a blocked reader each) and has no way to end one. The hub keeps
a single subscription per channel however many clients of the process listen,
all of them over one Redis connection (:mod:`tgext.socketio.hub_backends`),
ends it with the channel's last local subscriber, and outlives the backend
going away: the reader that loses Redis backs off and subscribes again.

Settings come from the app config under anypubsub's own prefix,
``anypubsub.``: ``backend`` (``memory`` by default, ``redis``) and the
backend's keyword arguments (``host``, which may be a ``redis://`` URL,
``port``, ``db``, ``password``, ``max_connections`` for Redis).
"""

import json
import logging

import anypubsub
import gevent
import gevent.event
import gevent.queue

from ._redis import disconnect_pool
from .exceptions import ConfigurationError, SocketIOExtError
from .hub_backends import channels_for

log = logging.getLogger(__name__)

PREFIX = "anypubsub."
DEFAULT_BACKEND = "memory"

#: the event every subscriber receives, spelled as in tgext.socketio 0.0.x
PUBLICATION_EVENT = "pubblication"

#: seconds a subscribe waits for the backend to confirm a new channel
SUBSCRIBE_WAIT = 2.0

_REDIS_INTEGER_KEYS = ("port", "db", "max_connections")

#: connections publishing may use at once, unless anypubsub.max_connections
#: says otherwise (plus the one the process listens on)
DEFAULT_MAX_CONNECTIONS = 8


class PublishError(SocketIOExtError):
    """The pub/sub backend could not take a message (Redis is down, say)."""


class PublicationTooLarge(PublishError):
    """A publication is over ``socketio.max_publication_bytes``."""

    def __init__(self, size, limit):
        super().__init__(
            "a publication of %d bytes is over socketio.max_publication_bytes "
            "(%d)" % (size, limit)
        )
        self.size, self.limit = size, limit


def backend_settings(app_config):
    """Return ``(backend name, keyword arguments)`` from ``anypubsub.*`` keys.

    :raises ConfigurationError: naming the key, for a value that cannot work.
    """
    settings = {
        key[len(PREFIX) :]: value
        for key, value in app_config.items()
        if isinstance(key, str) and key.startswith(PREFIX)
    }
    backend = str(settings.pop("backend", None) or DEFAULT_BACKEND).strip()
    if backend == "redis":
        for name in _REDIS_INTEGER_KEYS:
            if settings.get(name) in (None, ""):
                settings.pop(name, None)
                continue
            try:
                settings[name] = int(settings[name])
            except (TypeError, ValueError):
                raise ConfigurationError(
                    "%s%s = %r is not a whole number; set it in [app:main] of "
                    "your .ini file (anypubsub.port = 6379, say)."
                    % (PREFIX, name, settings[name])
                ) from None
    return backend, settings


def create_backend(app_config):
    """Build the anypubsub backend the ``anypubsub.*`` settings describe.

    Nothing connects yet (Redis connects on first use), so this is cheap
    enough to run at start-up as a check.

    :raises ConfigurationError: naming the key, for a setting that cannot work.
    """
    backend, settings = backend_settings(app_config)
    if backend == "redis":
        return _create_redis_backend(settings)
    if backend == "memory" and not settings:
        # anypubsub's default queue is queue.Queue(maxsize=0), which gevent's
        # patched queue deprecates; give it an unbounded gevent queue.
        return anypubsub.create_pubsub("memory", queue_factory=_unbounded_queue)
    try:
        return anypubsub.create_pubsub(backend, **settings)
    except anypubsub.ConfigurationError:
        raise ConfigurationError(
            "%sbackend = %r is not an anypubsub backend; set it to memory (one "
            "process) or redis (several processes)." % (PREFIX, backend)
        ) from None
    except ImportError as error:
        raise ConfigurationError(
            "%sbackend = %s needs a library that is not installed (%s)."
            % (PREFIX, backend, error)
        ) from None
    except TypeError as error:
        raise ConfigurationError(
            "the %s backend does not take the settings %s (%s); remove them "
            "from [app:main]."
            % (backend, ", ".join(PREFIX + key for key in sorted(settings)), error)
        ) from None


def _create_redis_backend(settings):
    try:
        import redis
    except ImportError:
        raise ConfigurationError(
            "%sbackend = redis needs redis-py; run 'pip install "
            "tgext.socketio[redis]'." % PREFIX
        ) from None
    unknown = set(settings) - {"host", "port", "db", "password", "max_connections"}
    if unknown:
        raise ConfigurationError(
            "the redis backend does not take %s; it takes %shost (a name or a "
            "redis:// URL), port, db, password and max_connections."
            % (", ".join(PREFIX + key for key in sorted(unknown)), PREFIX)
        )
    # Fail fast when Redis is away or hangs (the hub's reader retries on its
    # own, and a publish must answer); a small pool, which a publish waits
    # for up to 5 s when every connection is busy.
    connection_options = {
        "socket_connect_timeout": 5,
        "socket_timeout": 5,
        "socket_keepalive": True,
        "max_connections": settings.pop("max_connections", None)
        or DEFAULT_MAX_CONNECTIONS,
        "timeout": 5,
    }
    host = str(settings.pop("host", None) or "localhost").strip()
    try:
        if "://" in host:
            pool = redis.BlockingConnectionPool.from_url(host, **connection_options)
        else:
            pool = redis.BlockingConnectionPool(
                host=host, **settings, **connection_options
            )
    except ValueError as error:
        raise ConfigurationError(
            "%shost = %r is not a Redis address (%s); set it to a host name or "
            "a URL such as redis://localhost:6379/0." % (PREFIX, host, error)
        ) from None
    return anypubsub.create_pubsub("redis", connection_pool=pool)


def _unbounded_queue(maxsize=None):
    return gevent.queue.Queue()


class _Channel:
    """One channel of a hub: its local subscribers, and whether the backend
    has confirmed the subscription."""

    __slots__ = ("name", "groups", "live")

    def __init__(self, name):
        self.name = name
        # (engine, namespace) -> {namespace instance: None}: one packet is
        # encoded per group and sent to each of its members
        self.groups = {}
        self.live = gevent.event.Event()


class PubSubHub:
    """Channels and their local subscribers, over one backend.

    One subscription per process to each channel with local subscribers,
    all over one Redis connection for the Redis backend
    (:mod:`tgext.socketio.hub_backends`); the hub fans each publication out
    to the local subscribers, encoded once per namespace.

    :param backend: an anypubsub ``PubSub`` (see :func:`create_backend`).
    :param max_publication_bytes: the largest publication's JSON, or ``None``.
    """

    def __init__(self, backend, max_publication_bytes=None):
        self.backend = backend
        self.max_publication_bytes = max_publication_bytes
        self._channels = {}  # channel name -> _Channel
        self._backend_channels = channels_for(self, backend)

    def channel_names(self):
        """The channels with at least one subscriber in this process."""
        return sorted(self._channels)

    def subscribe(self, name, member):
        """Deliver the messages of channel ``name`` to ``member``.

        ``member`` is a namespace instance. Before this returns, the backend
        has confirmed the channel's subscription (or ``SUBSCRIBE_WAIT``
        seconds passed: Redis is away or slow, and the reader subscribes by
        itself later), so a publish made after the client's ``subscribe``
        ack reaches it.
        """
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel(name)
            self._backend_channels.listen(name)
        key = (member._tgsio_engine, member.ns_name)
        channel.groups.setdefault(key, {})[member] = None
        if not channel.live.is_set() and self._backend_channels.available:
            channel.live.wait(SUBSCRIBE_WAIT)

    def unsubscribe(self, name, member):
        """Stop delivering channel ``name`` to ``member``; the last one ends it."""
        channel = self._channels.get(name)
        if channel is None:
            return
        key = (member._tgsio_engine, member.ns_name)
        members = channel.groups.get(key)
        if members is not None:
            members.pop(member, None)
            if not members:
                del channel.groups[key]
        if not channel.groups:
            del self._channels[name]
            self._backend_channels.unlisten(name)

    def publish(self, name, message):
        """Send ``message`` (a JSON text) to every subscriber of channel ``name``.

        :raises PublicationTooLarge: past ``max_publication_bytes``.
        :raises PublishError: when the backend cannot take it.
        """
        limit = self.max_publication_bytes
        # json.dumps writes ASCII: characters are bytes
        if limit is not None and len(message) > limit:
            raise PublicationTooLarge(len(message), limit)
        try:
            self._backend_channels.publish(name, message)
        except Exception as error:  # the backend's boundary (Redis away)
            raise PublishError(
                "pub/sub backend refused a message for channel %r: %s: %s"
                % (name, type(error).__name__, error)
            ) from error

    def close(self):
        """Stop listening, and close the backend's connections (redis-py's
        pool, which publishing uses): left to the garbage collector, a socket
        may be finalized before the connection that would have closed it."""
        self._channels = {}
        self._backend_channels.close()
        pool = getattr(self.backend, "connection_pool", None)
        if pool is not None:
            disconnect_pool(pool, "the pub/sub backend's connections")

    # -- what the backend calls -------------------------------------------------

    def confirmed(self, name):
        """The backend is subscribed to channel ``name``."""
        channel = self._channels.get(name)
        if channel is not None:
            channel.live.set()

    def deliver(self, name, raw):
        """Hand a publication on channel ``name`` to its local subscribers."""
        channel = self._channels.get(name)
        if channel is None:
            return  # unsubscribed meanwhile
        try:
            message = json.loads(raw)
        except ValueError as error:
            log.warning(
                "pub/sub channel %r: dropped a message that is not JSON (%s)",
                name,
                error,
            )
            return
        for (engine, namespace), members in list(channel.groups.items()):
            engine.send_to_instances(
                list(members), namespace, PUBLICATION_EVENT, (message, name)
            )
