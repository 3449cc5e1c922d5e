"""The fan-out benchmark's server: ``python bench/fanout_server.py [--redis URL]``.

A minimal TurboGears app with one ``SocketIOController`` serving the namespace
``/fanout``, whose clients subscribe to the channel ``news``. One client
triggers a fan-out to all of them, either way:

* the event ``broadcast`` calls ``BroadcastMixin.broadcast_event("news", msg)``:
  every client of ``/fanout`` gets the event ``news``;
* the event ``publish`` calls ``PubSubTGNamespace.publish("news", msg)``: every
  subscriber of ``news`` gets the event ``pubblication``, through the
  ``anypubsub`` memory backend (the default) or, with ``--redis``, the Redis
  backend at that URL.

Served by ``tgext.socketio.server.SocketIOServer`` under ``/socketio`` on
127.0.0.1 (port 0 picks a free one), with logging at WARNING, after
``gevent.monkey.patch_all()``, as ``bench/server.py`` does. It prints its port
on a line of its own once listening, and serves until killed.
"""

from gevent import monkey

monkey.patch_all()  # before tg is imported: its request locals must be greenlet-local

import argparse  # noqa: E402
import gc  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
from server import loopback_limits  # noqa: E402 (bench/server.py)
from tg import MinimalApplicationConfigurator, TGController  # noqa: E402

from tgext.socketio import BroadcastMixin, SocketIOController  # noqa: E402
from tgext.socketio.pubsub import PubSubTGNamespace  # noqa: E402
from tgext.socketio.server import SocketIOServer, check_monkey_patching  # noqa: E402

RESOURCE = "socketio"


class LoopWatch:
    """How late the event loop wakes a greenlet that sleeps 10 ms (the worst
    since asked): what a stall costs every client."""

    def __init__(self):
        self.worst = 0.0
        gevent.spawn(self._watch)

    def _watch(self):
        while True:
            started = time.monotonic()
            gevent.sleep(0.01)
            self.worst = max(self.worst, time.monotonic() - started - 0.01)

    def take(self):
        worst, self.worst = self.worst, 0.0
        return worst


loop_watch = None


class Fanout(BroadcastMixin, PubSubTGNamespace):
    def subscribe_news(self):
        return None  # anyone may subscribe

    def subscribe_room(self, roomid):
        return "room-%s" % roomid  # the other channels (bench/channels.py)

    def on_stats(self):
        """The server process as seen from inside (bench/channels.py)."""
        greenlets = sum(
            1 for obj in gc.get_objects() if isinstance(obj, gevent.Greenlet) and not obj.dead
        )
        with open("/proc/self/status") as status:
            rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        return {"greenlets": greenlets, "rss_kib": rss, "worst_lateness_s": loop_watch.take()}

    def on_broadcast(self, message):
        self.broadcast_event("news", message)

    def on_publish(self, message):
        self.publish("news", message)


class FanoutSocketIO(SocketIOController):
    fanout = Fanout


class Globals:
    """The app's ``tg.app_globals`` (nothing kept there)."""


class RootController(TGController):
    socketio = FanoutSocketIO()


def make_app(redis_url=None, recovery=None, metrics=False):
    """The app; the ``anypubsub.*`` keys as an .ini file's [app:main] has them
    (and ``socketio.connection_state_recovery`` = ``recovery`` seconds)."""
    check_monkey_patching()
    app_conf = {}
    if redis_url:
        app_conf = {"anypubsub.backend": "redis", "anypubsub.host": redis_url}
    if recovery:
        app_conf["socketio.connection_state_recovery"] = recovery
    if metrics:
        app_conf["socketio.metrics"] = "true"
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
    return configurator.make_wsgi_app({}, app_conf)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--redis",
        metavar="URL",
        help="publish through the Redis backend at URL (default: memory)",
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--recovery",
        metavar="SECONDS",
        help="turn connection state recovery on, with this window",
    )
    parser.add_argument(
        "--metrics", action="store_true", help="turn socketio.metrics on"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    global loop_watch
    loop_watch = LoopWatch()
    server = SocketIOServer(
        ("127.0.0.1", args.port), make_app(args.redis, args.recovery, args.metrics), resource=RESOURCE, **loopback_limits()
    )
    server.init_socket()
    print(server.server_port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
