"""MetricsController: the Prometheus metrics of the Socket.IO server, as a page.

Mount it where you want the metrics served, and guard it as any TG
controller (``socketio.metrics = true`` turns the metrics on)::

    from tg.predicates import has_permission
    from tgext.socketio import MetricsController

    class RootController(BaseController):
        metrics = MetricsController(allow_only=has_permission("manage"))
"""

import logging

from tg import TGController, expose
from webob import Response

from ._engine.runtime import runtime_of
from ._metrics.processes import multiprocess_directory
from ._upstream.tg import current_app_config

log = logging.getLogger(__name__)

#: the body of the page while ``socketio.metrics`` is off (answered 404)
OFF_MESSAGE = b"Metrics are off: set socketio.metrics = true in [app:main].\n"


class MetricsController(TGController):
    """Answer ``GET`` with the app's Socket.IO metrics, in Prometheus' text format.

    With several worker processes (``workers = N``, or gunicorn with
    ``PROMETHEUS_MULTIPROC_DIR`` set), any worker answers with the sum over
    all of them. While ``socketio.metrics`` is off the page answers 404.

    :param allow_only: a TG predicate guarding the page (TG's own
        ``allow_only``; a subclass may set it as a class attribute instead).

    Example::

        class RootController(BaseController):
            metrics = MetricsController(allow_only=has_permission("manage"))
    """

    def __init__(self, allow_only=None):
        super().__init__()
        if allow_only is not None:
            self.allow_only = allow_only

    @expose()
    def index(self, *args, **kwargs):
        return metrics_response(runtime_of(current_app_config()).metrics)


def metrics_response(metrics):
    """The response to a scrape of ``metrics`` (an ``AppMetrics`` or ``None``)."""
    if metrics is None:
        return Response(
            OFF_MESSAGE, status=404, content_type="text/plain", charset="utf-8"
        )
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    metrics.flush()  # this process's events, up to now

    directory = multiprocess_directory()
    if directory is None:
        registry = metrics.registry
    else:
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)
    response = Response(generate_latest(registry))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
