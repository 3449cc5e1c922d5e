"""A TG app for ``gearbox serve`` whose presence entries live 2 s unless
renewed (every 0.5 s): the test of a process that dies kills it and waits
for the others to tell its members' leaves."""

from tg import MinimalApplicationConfigurator, TGController

from tgext.socketio import SocketIOController
from tgext.socketio._channels import backends as hub_backends
from tgext.socketio.pubsub import PubSubTGNamespace

hub_backends.PRESENCE_TTL = 2
hub_backends.PRESENCE_HEARTBEAT = 0.5


class Rooms(PubSubTGNamespace):
    channel_options = {"live-*": {"presence": True}}

    def subscribe_live(self, name):
        return "live-%s" % name


class SocketIO(SocketIOController):
    rooms = Rooms


class Root(TGController):
    socketio = SocketIO()


def make_app(global_config=None, **app_conf):
    configurator = MinimalApplicationConfigurator()
    configurator.update_blueprint(
        {"root_controller": Root(), "helpers": {}, "app_globals": type("G", (), {})}
    )
    return configurator.make_wsgi_app(global_config or {}, app_conf)
