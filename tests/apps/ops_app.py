"""A TG app with a cookie login, whose operators act on the clients of every
process: served by ``gearbox serve`` (``make_app``) and in-process
(``build_ops_app``), for the cluster operations' tests.

``/ops/*`` is guarded by TG's own ``allow_only = has_permission("manage")``;
``carol`` has that permission, ``alice`` and ``bob`` do not.
"""
import os

from tg import TGController, expose
from tg.predicates import has_permission

from tgext.socketio import (
    BaseNamespace,
    RoomsMixin,
    SocketIOController,
    disconnect_clients,
    emit_with_acks,
    fetch_clients,
)

from . import users
from .users import OPERATORS, LoginPages, login_configurator

USERS = OPERATORS

#: recv_disconnect calls seen by this process: (user, namespace)
LEFT = []


class Recorded(BaseNamespace):
    def recv_disconnect(self):
        identity = self.environ.get("repoze.who.identity") or {}
        LEFT.append((identity.get("repoze.who.userid"), self.ns_name))
        super().recv_disconnect()


class Chat(RoomsMixin, Recorded):
    def on_join(self, room):
        self.join(room)
        return os.getpid()

    def on_whoami(self):
        identity = self.environ.get("repoze.who.identity") or {}
        return identity.get("repoze.who.userid"), os.getpid()

    def on_poll_room(self, room, timeout):
        # from a handler: ask the room, wait for its answers
        acks = emit_with_acks("question", "ready?", namespace="/chat", to=room,
                              timeout=timeout)
        return {"answers": acks.answers, "missing": list(acks.missing)}


class Lobby(Recorded):
    def on_ping(self):
        return "pong"


class SocketIO(SocketIOController):
    chat = Chat
    lobby = Lobby


class Operations(TGController):
    allow_only = has_permission("manage")

    @expose("json")
    def clients(self, namespace=None, room=None, user=None):
        found = fetch_clients(namespace or None, to=room or None, user=user or None)
        return {"clients": [dict(vars(client), rooms=list(client.rooms))
                            for client in found]}

    @expose("json")
    def kick(self, user=None, room=None, namespace=None):
        count = disconnect_clients(namespace or None, to=room or None,
                                   user=user or None)
        return {"disconnected": count}

    @expose("json")
    def ask(self, room, timeout="2"):
        acks = emit_with_acks("question", "ready?", namespace="/chat", to=room,
                              timeout=float(timeout))
        return {"answers": acks.answers, "missing": list(acks.missing),
                "silent_servers": acks.silent_servers}

    @expose("json")
    def left(self):
        return {"left": LEFT, "pid": os.getpid()}


class Root(LoginPages):
    socketio = SocketIO()
    ops = Operations()


def _configurator(config=None):
    return login_configurator(Root(), USERS, config)


def make_app(global_config=None, **app_conf):
    """For ``gearbox serve`` (``use = call:tests.apps.ops_app:make_app``)."""
    return _configurator().make_wsgi_app(global_config or {}, app_conf)


def build_ops_app(config=None):
    """The same app in this process, with ``config`` (``socketio.*`` keys)."""
    from ..conftest import with_config

    return with_config(_configurator(config).make_wsgi_app())


def login(base_url, user_name):
    """Log in through the login form; return the Cookie header value."""
    return users.login(base_url, user_name, users=USERS)
