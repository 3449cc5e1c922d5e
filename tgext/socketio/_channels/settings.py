"""The ``anypubsub.*`` settings of an app: checked, and made into a backend.

Settings come from the app config under anypubsub's own prefix,
``anypubsub.``: ``backend`` (``memory`` by default, ``redis``) and the
backend's keyword arguments (``host``, which may be a ``redis://`` URL,
``port``, ``db``, ``password``, ``max_connections`` for Redis).
"""

import anypubsub
import gevent.queue

from ..exceptions import ConfigurationError

PREFIX = "anypubsub."
DEFAULT_BACKEND = "memory"

_REDIS_INTEGER_KEYS = ("port", "db", "max_connections")

#: connections publishing may use at once, unless anypubsub.max_connections
#: says otherwise (plus the one the process listens on)
DEFAULT_MAX_CONNECTIONS = 8


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
