"""Where an app's metrics are made and handed to what counts.

Every object that counts something has a ``metrics`` attribute, ``None``
by default (a class attribute): the engine, its Engine.IO server (and so
its sessions), its dispatcher, its Redis presence, the pub/sub hub and its
Redis channels, the recovery stream, and the server's admission. This
module sets them when ``socketio.metrics`` is on.
"""

import logging

log = logging.getLogger("tgext.socketio.metrics")


def metrics_for(options, hub=None):
    """The app's :class:`~.instruments.AppMetrics`, or ``None`` when
    ``socketio.metrics`` is off; ``hub`` (the app's pub/sub hub) and its
    Redis backends report to it.

    :raises ConfigurationError: when prometheus_client is not installed.
    """
    if not options.get("metrics"):
        return None
    try:
        from .instruments import AppMetrics
    except ImportError as error:
        from ..exceptions import ConfigurationError

        raise ConfigurationError(
            "socketio.metrics = true needs prometheus_client (%s): run "
            "pip install tgext.socketio[metrics], or set socketio.metrics = false "
            "in [app:main]." % error
        ) from None
    metrics = AppMetrics()
    if hub is not None:
        hub.metrics = metrics
        channels = getattr(hub, "_backend_channels", None)
        if channels is not None and hasattr(type(channels), "metrics"):
            channels.metrics = metrics
            metrics.backend("pubsub", True)
        if hub.stream is not None:
            hub.stream.metrics = metrics
            metrics.backend("recovery_stream", True)
    return metrics


def watch_engine(metrics, engine):
    """Have ``engine`` (a new SocketIOEngine) count into ``metrics``."""
    engine_metrics = metrics.for_engine(engine)
    engine.metrics = engine_metrics
    engine.eio.metrics = engine_metrics
    engine._dispatcher.metrics = engine_metrics
    presence = engine.presence
    if hasattr(type(presence), "metrics"):  # Redis: the message queue's server
        presence.metrics = metrics
        metrics.backend("message_queue", True)
    stream = getattr(engine.recovery, "stream", None)
    if stream is not None:  # recovery across processes, through Redis
        stream.metrics = metrics
        metrics.backend("recovery_stream", True)


def watch_server(server, runtime):
    """Have ``server`` (a SocketIOServer) count what it refuses into the
    metrics of ``runtime`` (an app's runtime it serves), if they are on."""
    metrics = getattr(runtime, "metrics", None)
    if metrics is not None:
        server.admission.metrics = metrics
