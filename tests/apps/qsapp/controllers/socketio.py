"""The app's Socket.IO namespaces, mounted where ``socketio_resource`` points."""

import os

from tg import expose

from tgext.socketio import BaseNamespace, SocketIOController, fetch_clients
from tgext.socketio.pubsub import PubSubTGNamespace


class PingPong(BaseNamespace):
    def on_ping(self, attack):
        self.emit("pong", {"sound": "pong"})
        return os.getpid()


class Channels(PubSubTGNamespace):
    def subscribe_news(self):
        return True

    def on_shout(self, text):
        self.publish("news", {"text": text, "pid": os.getpid()})
        return os.getpid()


class QuickstartSocketIO(SocketIOController):
    pingpong = PingPong
    channels = Channels

    @expose()
    def page(self):
        return "page served"

    @expose("json")
    def clients(self, namespace="/channels"):
        found = fetch_clients(namespace)
        return {"sids": sorted(client.sid for client in found),
                "pids": sorted({int(client.server.rsplit(":", 1)[1])
                                for client in found})}
