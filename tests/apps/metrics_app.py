"""runner_app's namespaces, with a MetricsController mounted at /metrics:
served by ``gearbox serve`` in tests/test_metrics.py (``workers = 2``)."""
from tg import MinimalApplicationConfigurator

from tgext.socketio import MetricsController

from . import runner_app


class Root(runner_app.Root):
    metrics = MetricsController()


def make_app(global_config=None, **app_conf):
    configurator = MinimalApplicationConfigurator()
    configurator.update_blueprint(
        {"root_controller": Root(), "helpers": {}, "app_globals": type("G", (), {})}
    )
    return configurator.make_wsgi_app(global_config or {}, app_conf)
