"""What one TurboGears app runs for Socket.IO: its engines and its pub/sub hub.

An app's runtime is made with the app, from that app's own config (see
:func:`tgext.socketio.controller.start_app_runtime`), so every ``socketio.*``
and ``anypubsub.*`` setting is checked before a request can arrive, under any
server, and two apps in one process never share options, engines or
channels. It lives in the app's config; the server that serves the app closes
it when it stops.
"""

import logging

from .config import parse_options
from .hub import PubSubHub, backend_settings, create_backend
from .keys import RUNTIME_KEY

log = logging.getLogger(__name__)


class AppRuntime:
    """The Socket.IO engines and the pub/sub hub of one app.

    :param app_config: the app's own config dict.
    :raises ConfigurationError: naming the key, for a bad setting.
    """

    def __init__(self, app_config):
        self.options = parse_options(app_config)
        self.pubsub_backend = backend_settings(app_config)[0]
        self.hub = PubSubHub(create_backend(app_config))
        self._engines = {}  # SocketIOController instance -> SocketIOEngine

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
            scheme = environ.get("wsgi.url_scheme", "http")
            host = environ.get("HTTP_HOST", "")
            allowed = ["%s://%s" % (scheme, host)]
            if (
                "HTTP_X_FORWARDED_PROTO" in environ
                or "HTTP_X_FORWARDED_HOST" in environ
            ):
                forwarded_scheme = environ.get("HTTP_X_FORWARDED_PROTO", scheme)
                forwarded_host = environ.get("HTTP_X_FORWARDED_HOST", host)
                allowed.append(
                    "%s://%s"
                    % (
                        forwarded_scheme.split(",")[0].strip(),
                        forwarded_host.split(",")[0].strip(),
                    )
                )
        return origin in allowed

    def serves_pubsub(self):
        """Whether a ``PubSubTGNamespace`` is among the namespaces served."""
        from .pubsub import PubSubTGNamespace

        return any(
            issubclass(namespace_class, PubSubTGNamespace)
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
        return engine

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
        self.hub.close()


def runtime_of(app_config):
    """Return the runtime of the app whose config is ``app_config``, made on first use."""
    runtime = app_config.get(RUNTIME_KEY)
    if runtime is None:
        runtime = app_config[RUNTIME_KEY] = AppRuntime(app_config)
    return runtime
