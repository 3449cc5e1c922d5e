"""A TG app with a cookie login that mounts the Socket.IO admin view, for
tests/test_admin.py.

``/socketio_admin`` is guarded by ``has_permission("manage")`` (``carol``),
``/socketio_watch`` is read-only and guarded by ``has_permission("watch")``
(``dave``); ``alice`` and ``bob`` only chat.
"""
import os

from tg.predicates import has_permission

from tgext.socketio import RoomsMixin, SocketIOAdminController, SocketIOController
from tgext.socketio.pubsub import PubSubTGNamespace

from . import users
from .users import OPERATORS, LoginPages, login_configurator

USERS = OPERATORS


class Chat(RoomsMixin, PubSubTGNamespace):
    def on_join(self, room):
        self.join(room)
        return True

    def on_say(self, text):
        return text

    def on_pid(self):
        return os.getpid()

    def subscribe_news(self):
        return True


class SocketIO(SocketIOController):
    chat = Chat


class Root(LoginPages):
    socketio = SocketIO()
    socketio_admin = SocketIOAdminController(has_permission("manage"))
    socketio_watch = SocketIOAdminController(has_permission("watch"), read_only=True)


def _configurator(config=None):
    return login_configurator(Root(), USERS, config)


def make_app(global_config=None, **app_conf):
    """For ``gearbox serve`` (``use = call:tests.apps.admin_app:make_app``)."""
    return _configurator().make_wsgi_app(global_config or {}, app_conf)


def build_admin_app(config=None):
    """The app in this process, with ``config`` (``socketio.*`` keys)."""
    from ..conftest import with_config

    return with_config(_configurator(config).make_wsgi_app())


def login(base_url, user_name):
    """Log in through the login form; return the Cookie header value."""
    return users.login(base_url, user_name, users=USERS)
