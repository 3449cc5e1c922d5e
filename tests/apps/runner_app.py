"""A small TG app served by ``gearbox serve`` in subprocess tests.

Its namespace reports what the server process looks like from inside a
handler: whether TG's request context is greenlet-local, and the request.
"""
import os

import gevent
import tg
from tg import MinimalApplicationConfigurator, TGController, expose
from tg.configurator.components.debugger import DebuggerConfigurationComponent

from tgext.socketio import BaseNamespace, BroadcastMixin, RoomsMixin, SocketIOController
from tgext.socketio._upstream.tg import context_is_greenlet_local
from tgext.socketio.pubsub import PubSubTGNamespace


class Probe(BroadcastMixin, RoomsMixin, BaseNamespace):
    def on_ping(self, attack):
        self.emit("pong", {"sound": "pong"})
        return "ack"

    def on_whoami(self):
        return os.getpid()

    def on_shout(self, text):
        self.broadcast_event("heard", text)

    def on_join(self, room):
        self.join(room)
        return self._tgsio.sid

    def on_to_room(self, room, text):
        self.emit_to_room(room, "heard", text)

    def on_who(self, room=None):
        return self.participants(room)

    def on_inspect(self, label):
        tg.request.environ["tgext.test.label"] = label
        gevent.sleep(0.05)  # let other clients' handlers interleave
        return {
            "greenlet_local": context_is_greenlet_local(),
            "label": tg.request.environ["tgext.test.label"],
            "path": tg.request.path,
            "debug": bool(tg.config.get("debug")),
        }


class News(PubSubTGNamespace):
    def subscribe_news(self):
        return None

    def on_publish(self, text):
        return self.publish("news", text)


class SocketIO(SocketIOController):
    probe = Probe
    news = News

    @expose()
    def page(self):
        return "page served"

    @expose()
    def broken(self):
        raise RuntimeError("a page error for the debugger")


class Root(TGController):
    socketio = SocketIO()
    socket_io = SocketIO()  # for socketio_resource = socket.io


def make_app(global_config=None, **app_conf):
    configurator = MinimalApplicationConfigurator()
    configurator.register(DebuggerConfigurationComponent)
    configurator.update_blueprint(
        {"root_controller": Root(), "helpers": {}, "app_globals": type("G", (), {})}
    )
    return configurator.make_wsgi_app(global_config or {}, app_conf)
