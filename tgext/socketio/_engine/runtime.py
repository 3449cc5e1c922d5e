"""What one TurboGears app runs for Socket.IO: its engines and its pub/sub hub.

An app's runtime is made with the app, from that app's own config (see
:func:`tgext.socketio.controller.start_app_runtime`), so every ``socketio.*``
and ``anypubsub.*`` setting is checked before a request can arrive, under any
server, and two apps in one process never share options, engines or
channels. It lives in the app's config; the server that serves the app closes
it when it stops.
"""

import logging
import string

from .._channels.hub import PubSubHub, backend_settings, create_backend
from .._channels.options import declared_options
from .._config.keys import RUNTIME_KEY
from .._config.settings import parse_options
from .._metrics.hooks import metrics_for, watch_engine
from .._recovery.stream import RecoveryStream
from ..exceptions import ConfigurationError
from .client_manager import is_redis_url

log = logging.getLogger("tgext.socketio.runtime")


class AppRuntime:
    """The Socket.IO engines and the pub/sub hub of one app.

    :param app_config: the app's own config dict.
    :raises ConfigurationError: naming the key, for a bad setting.
    """

    def __init__(self, app_config):
        self.options = parse_options(app_config)
        self.pubsub_backend = backend_settings(app_config)[0]
        self.hub = PubSubHub(
            create_backend(app_config),
            max_publication_bytes=self.options["max_publication_bytes"],
        )
        self.hub.stream = recovery_stream_for(self.options)
        #: the app's metrics (``socketio.metrics``), else ``None``
        self.metrics = metrics_for(self.options, self.hub)
        self._engines = {}  # SocketIOController instance -> SocketIOEngine
        #: where the app's ``SocketIOController`` instances are mounted, as
        #: attribute paths (``/socketio``), found when the app was made
        self.mount_paths = []
        #: answers cluster operations (:mod:`tgext.socketio.cluster`) for
        #: this process, once it serves an engine with a Redis message queue
        self.cluster = None
        #: the recent events this process's engines received, kept for the
        #: admin view (:mod:`tgext.socketio._cluster.events`), else ``None``
        self.event_log = None

    @property
    def engines(self):
        """The engines built so far, one per ``SocketIOController`` served."""
        return list(self._engines.values())

    def allows_origin(self, environ):
        """Whether the request's ``Origin`` may connect, by python-engineio's rule.

        ``socketio.cors_allowed_origins`` unset: the request's own
        ``scheme://Host`` (and the ``X-Forwarded-Proto``/``-Host`` one);
        ``*``: any; else the origins listed. No ``Origin``: not a browser.
        """
        origin = environ.get("HTTP_ORIGIN")
        allowed = self.options["cors_allowed_origins"]
        if origin is None or allowed == "*":
            return True
        if allowed is None:
            allowed = own_origins(environ)
        return origin in allowed

    def check_mounted_at(self, resource, where="socketio_resource in [server:main]"):
        """Refuse a resource no ``SocketIOController`` of the app is mounted at.

        Long-polling would still reach a controller mounted elsewhere (TG
        dispatches there), while WebSocket upgrades happen only under the
        resource: the page would quietly stay on polling. Nothing is refused
        when the app's controllers were not found at start-up (behind a
        ``_lookup``, say).

        :param resource: the resource path, such as ``/socketio``.
        :param where: where the resource is set, for the message.
        :raises ConfigurationError: naming the setting and the mount paths.
        """
        if not self.mount_paths:
            return
        wanted = _as_attribute_path(resource)
        if any(path == wanted for path in self.mount_paths):
            return
        mounted = sorted(set(self.mount_paths))
        raise ConfigurationError(
            "%s is %s, but the app's SocketIOController is mounted at %s: set "
            "socketio_resource = %s (or mount the controller at %s)."
            % (
                where,
                resource.strip("/"),
                " and ".join(mounted),
                mounted[0].strip("/"),
                resource,
            )
        )

    def serves_pubsub(self):
        """Whether a ``PubSubTGNamespace`` is among the namespaces served."""
        return any(
            namespace_class._tgsio_shares_hub
            for engine in self._engines.values()
            for namespace_class in engine.namespace_classes.values()
        )

    def engine_for(self, controller):
        """The engine serving ``controller``'s namespaces in this app."""
        engine = self._engines.get(controller)
        if engine is None:
            from .engine import SocketIOEngine

            engine = SocketIOEngine(controller.namespace_classes(), self.options)
            self._engines[controller] = engine
            if engine.recovery is not None:
                engine.recovery.hub = self.hub
            for namespace_class in engine.namespace_classes.values():
                self.hub.registry.add(declared_options(namespace_class))
            if self.metrics is not None:
                watch_engine(self.metrics, engine)
            engine.event_log = self.event_log
            self.listen_for_cluster_operations()
        return engine

    def listen_for_cluster_operations(self):
        """Start answering the cluster operations (with a Redis message
        queue; once per runtime): with the first engine, or earlier, by a
        worker process before it says it is ready. The listener, or None."""
        url = self.options["message_queue"]
        if self.cluster is None and url is not None and is_redis_url(url):
            from .._cluster.bus import ClusterListener

            self.cluster = ClusterListener(url, self.options["channel"], self)
        return self.cluster

    def close(self):
        """Disconnect every client, end every greenlet the engines and hub run.

        A request arriving later builds a fresh engine.
        """
        engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            try:
                engine.close()
            except Exception:  # one engine failing must not keep the others open
                log.exception("closing a Socket.IO engine failed")
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None
        if self.metrics is not None:
            self.metrics.close()  # what was counted last reaches the values
        self.hub.close()
        if self.hub.stream is not None:
            self.hub.stream.close()


def own_origins(environ):
    """The origins of the request's own site: ``scheme://Host``, and the one
    ``X-Forwarded-Proto``/``-Host`` give (behind a proxy)."""
    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST", "")
    origins = ["%s://%s" % (scheme, host)]
    if "HTTP_X_FORWARDED_PROTO" in environ or "HTTP_X_FORWARDED_HOST" in environ:
        forwarded_scheme = environ.get("HTTP_X_FORWARDED_PROTO", scheme)
        forwarded_host = environ.get("HTTP_X_FORWARDED_HOST", host)
        origins.append(
            "%s://%s"
            % (
                forwarded_scheme.split(",")[0].strip(),
                forwarded_host.split(",")[0].strip(),
            )
        )
    return origins


def recovery_stream_for(options):
    """The stream the app's PubSub publications go through, with connection
    state recovery on and a Redis message queue (whether this process
    serves engines or only publishes), else ``None``."""
    url = options["message_queue"]
    if not options["connection_state_recovery"] or url is None or not is_redis_url(url):
        return None
    return RecoveryStream(
        url,
        options["channel"],
        options["connection_state_recovery"]
        + options["ping_interval"]
        + options["ping_timeout"],
        options["recovery_max_events"],
        deliver=None,
    )


#: TG's dispatch (crank's default path translator) reaches the attribute
#: ``socket_io`` for the path piece ``socket.io``: punctuation becomes ``_``
_PATH_PIECE_TO_ATTRIBUTE = str.maketrans(
    string.punctuation, "_" * len(string.punctuation)
)


def _as_attribute_path(resource):
    pieces = [piece for piece in resource.split("/") if piece]
    return "".join("/" + piece.translate(_PATH_PIECE_TO_ATTRIBUTE) for piece in pieces)


def runtime_of(app_config):
    """Return the runtime of the app whose config is ``app_config``, made on first use."""
    runtime = app_config.get(RUNTIME_KEY)
    if runtime is None:
        runtime = app_config[RUNTIME_KEY] = AppRuntime(app_config)
    return runtime
