"""A TG app with a cookie login that mounts the Socket.IO admin view, for
tests/test_admin.py.

``/socketio_admin`` is guarded by ``has_permission("manage")`` (``carol``),
``/socketio_watch`` is read-only and guarded by ``has_permission("watch")``
(``dave``); ``alice`` and ``bob`` only chat.
"""
import os

import requests
from tg import MinimalApplicationConfigurator, TGController, expose
from tg.configuration.auth import TGAuthMetadata
from tg.configurator.components.auth import SimpleAuthenticationConfigurationComponent
from tg.configurator.components.caching import CachingConfigurationComponent
from tg.predicates import has_permission

from tgext.socketio import RoomsMixin, SocketIOAdminController, SocketIOController
from tgext.socketio.pubsub import PubSubTGNamespace

USERS = {
    # user name: (password, permissions)
    "alice": ("alice-pw", ["chat"]),
    "bob": ("bob-pw", ["chat"]),
    "carol": ("carol-pw", ["chat", "manage"]),
    "dave": ("dave-pw", ["watch"]),
}


class UserMetadata(TGAuthMetadata):
    def authenticate(self, environ, identity):
        user = USERS.get(identity.get("login"))
        if user is not None and identity.get("password") == user[0]:
            return identity["login"]
        return None

    def get_user(self, identity, userid):
        return {"user_name": userid} if userid else None

    def get_groups(self, identity, userid):
        return []

    def get_permissions(self, identity, userid):
        return list(USERS.get(userid, (None, []))[1])


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


class Root(TGController):
    socketio = SocketIO()
    socketio_admin = SocketIOAdminController(has_permission("manage"))
    socketio_watch = SocketIOAdminController(has_permission("watch"), read_only=True)

    @expose()
    def index(self):
        return "home"

    @expose()
    def login(self, **kwargs):
        return "login page"

    @expose()
    def logged_in(self, **kwargs):
        return "logged in"


def _configurator(config=None):
    configurator = MinimalApplicationConfigurator()
    configurator.register(SimpleAuthenticationConfigurationComponent)
    configurator.register(CachingConfigurationComponent)
    configurator.update_blueprint({
        "root_controller": Root(),
        "helpers": {},
        "app_globals": type("Globals", (), {}),
        "sa_auth.enabled": True,
        "sa_auth.cookie_secret": "not-a-secret-test-value",
        "sa_auth.authmetadata": UserMetadata(),
        "sa_auth.post_login_url": "/logged_in",
        "sa_auth.post_logout_url": "/",
    })
    configurator.update_blueprint(dict(config or {}))
    return configurator


def make_app(global_config=None, **app_conf):
    """For ``gearbox serve`` (``use = call:tests.apps.admin_app:make_app``)."""
    return _configurator().make_wsgi_app(global_config or {}, app_conf)


def build_admin_app(config=None):
    """The app in this process, with ``config`` (``socketio.*`` keys)."""
    from ..conftest import with_config

    return with_config(_configurator(config).make_wsgi_app())


def login(base_url, user_name):
    """Log in through the login form; return the Cookie header value."""
    session = requests.Session()
    response = session.post(
        base_url + "/login_handler",
        data={"login": user_name, "password": USERS[user_name][0]},
        allow_redirects=False,
        timeout=5,
    )
    assert response.status_code == 302, response.status_code
    cookie = "; ".join("%s=%s" % item for item in session.cookies.items())
    assert "authtkt=" in cookie, "login failed for %s" % user_name
    return cookie
