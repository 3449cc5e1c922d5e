"""The scale-out benchmark's app, served by ``gearbox serve`` (``bench/scale.py``).

One TurboGears app, ``use = call:scale_app:make_app`` in ``[app:main]``, with
one ``SocketIOController`` serving two namespaces taken from the other
benchmarks unchanged:

``/pingpong``
    the ping-pong example's ``PingPong`` (``examples/pingpong/app.py``): its
    ``on_ping`` runs TG's ``@validate``, then emits ``pong`` to the client;
``/fanout``
    ``bench/fanout_server.py``'s ``Fanout``: ``broadcast`` calls
    ``broadcast_event("news", msg)``, ``publish`` calls
    ``publish("news", msg)``; anyone may subscribe to ``news``.

The ``socketio.*`` and ``anypubsub.*`` keys of ``[app:main]`` reach the app
as they would any TG app. gearbox must be able to import this module and
``fanout_server`` (``PYTHONPATH=bench``); the ping-pong example is loaded
from its file. The runner patches the standard library with gevent before
this module is imported.
"""

import importlib.util
import os

from fanout_server import Fanout
from tg import MinimalApplicationConfigurator, TGController

from tgext.socketio import SocketIOController

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
PINGPONG_APP = os.path.join(
    os.path.dirname(BENCH_DIR), "examples", "pingpong", "app.py"
)


def _pingpong_namespace():
    """``PingPong`` of the ping-pong example (a module named ``app`` is too
    common a name to put its directory on ``sys.path``)."""
    spec = importlib.util.spec_from_file_location("pingpong_example", PINGPONG_APP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PingPong


class ScaleSocketIO(SocketIOController):
    pingpong = _pingpong_namespace()
    fanout = Fanout


class Globals:
    """The app's ``tg.app_globals`` (nothing kept there)."""


class RootController(TGController):
    socketio = ScaleSocketIO()


def make_app(global_config=None, **app_conf):
    """The PasteDeploy app factory."""
    configurator = MinimalApplicationConfigurator()
    configurator.update_blueprint(
        {
            "root_controller": RootController(),
            "app_globals": Globals,
            "helpers": {},
            "renderers": ["json"],
            "default_renderer": "json",
        }
    )
    return configurator.make_wsgi_app(global_config or {}, app_conf)
