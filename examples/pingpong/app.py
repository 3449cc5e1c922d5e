"""The ping-pong example: tgext.socketio 0.0.x's demo page on socket.io-client 4.x.

Run it with one command from the repository root::

    examples/pingpong/run

then open http://127.0.0.1:8080/socketio/page and click the links. "Ping"
answers one pong, "Fireball" ten, "Auto" picks one of the two on the server,
"Error" fails validation and the page shows the error event.
"""
import os
import random

from tg import MinimalApplicationConfigurator, TGController, expose, redirect, validate
from tg.configurator.components.statics import StaticsConfigurationComponent
from tg.validation import TGValidationError

from tgext.socketio import SocketIOController, SocketIOTGNamespace

HERE = os.path.dirname(os.path.abspath(__file__))


class NoFireBallValidator:
    """Turns the "auto" attack into a random one; refuses the "error" attack."""

    def to_python(self, value, state=None):
        attack_type = value["type"]
        if attack_type == "auto":
            return {"type": random.choice(["ping", "fireball"])}
        if attack_type == "error":
            raise TGValidationError("Got an error!")
        return value


class PingPong(SocketIOTGNamespace):
    @validate({"attack": NoFireBallValidator()})
    def on_ping(self, attack):
        if attack["type"] == "fireball":
            for _ in range(10):
                self.emit("pong", {"sound": "bang!"})
        else:
            self.emit("pong", {"sound": "pong"})


class SocketIO(SocketIOController):
    pingpong = PingPong

    @expose("kajiki:index.xhtml")
    def page(self):
        return {}


class Globals:
    """The app's ``tg.app_globals`` (this example keeps nothing there)."""


class RootController(TGController):
    socketio = SocketIO()

    @expose()
    def index(self):
        redirect("/socketio/page")


def make_app(global_config=None, **app_conf):
    """The PasteDeploy app factory (``use = call:app:make_app``)."""
    configurator = MinimalApplicationConfigurator()
    configurator.register(StaticsConfigurationComponent)
    configurator.update_blueprint(
        {
            "root_controller": RootController(),
            "app_globals": Globals,
            "helpers": {},
            "renderers": ["kajiki"],
            "default_renderer": "kajiki",
            "paths": {
                "templates": [os.path.join(HERE, "templates")],
                "static_files": os.path.join(HERE, "public"),
            },
        }
    )
    return configurator.make_wsgi_app(global_config or {}, app_conf)
