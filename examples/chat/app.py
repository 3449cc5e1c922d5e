"""The chat example: tgext.socketio 0.0.x's Redis chat on socket.io-client 4.x.

Run it with one command from the repository root::

    examples/chat/run                 # Redis: starts or reuses redis-server
    BACKEND=memory examples/chat/run  # one process, no Redis

then open http://127.0.0.1:8090/ in two browser windows, pick a nickname and
a room in each, and talk. ``PORT=8091 examples/chat/run`` starts a second
process on the same Redis: a message sent through one reaches the people in
that room on the other.
"""

import os
import re

from tg import MinimalApplicationConfigurator, TGController, expose, validate
from tg.configurator.components.statics import StaticsConfigurationComponent
from tg.validation import Convert

from tgext.socketio import SocketIOController
from tgext.socketio.pubsub import PubSubTGNamespace

HERE = os.path.dirname(os.path.abspath(__file__))

ROOM_ID = re.compile(r"[a-z0-9]{1,20}\Z")


def room_id(value):
    """A room is 1-20 lower-case letters or digits (its channel is room-<id>)."""
    value = str(value).strip().lower()
    if not ROOM_ID.match(value):
        raise ValueError(value)
    return value


def nickname(value):
    value = " ".join(str(value).split())[:30]
    if not value:
        raise ValueError(value)
    return value


ROOM_MESSAGE = "A room name is 1 to 20 letters or digits"


class Chat(PubSubTGNamespace):
    """``subscribe("room", id)`` joins a room; ``say(id, text)`` talks in it.

    A room keeps its last 20 messages for an hour, shown to whoever enters,
    and tells who is in it as people come and go.
    """

    channel_options = {
        "room-*": {"history": 20, "history_seconds": 3600, "presence": True},
    }

    def presence_meta(self, channel):
        return {"nickname": self.session.get("nickname", "anonymous")}

    @validate({"name": Convert(nickname, "Pick a nickname")})
    def on_nickname(self, name):
        self.session["nickname"] = name
        return name

    @validate({"roomid": Convert(room_id, ROOM_MESSAGE)})
    def subscribe_room(self, roomid):
        return "room-%s" % roomid

    @validate({"roomid": Convert(room_id, ROOM_MESSAGE), "text": Convert(str)})
    def on_say(self, roomid, text):
        channel = "room-%s" % roomid
        if channel not in self.subscriptions():
            self.error("not_in_room", "Join the room %s before talking in it" % roomid)
            return False
        message = {
            "room": roomid,
            "nickname": self.session.get("nickname", "anonymous"),
            "text": text[:500],
        }
        return self.publish(channel, message)


class SocketIO(SocketIOController):
    chat = Chat


class RootController(TGController):
    socketio = SocketIO()

    @expose("kajiki:index.xhtml")
    def index(self):
        return {}


class Globals:
    """The app's ``tg.app_globals`` (this example keeps nothing there)."""


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
