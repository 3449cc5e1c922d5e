"""Users of the test apps with a login, for TG's simple authentication
(repoze.who with the form login plugin and the auth_tkt cookie): the users,
the pages the login redirects to, the app's configurator, and a login.

Importable by an app that ``gearbox serve`` loads (nothing of pytest).
"""
from tg import MinimalApplicationConfigurator, TGController, expose
from tg.configuration.auth import TGAuthMetadata
from tg.configurator.components.auth import SimpleAuthenticationConfigurationComponent
from tg.configurator.components.caching import CachingConfigurationComponent

USERS = {
    # user name: (password, groups, permissions)
    "alice": ("alice-pw", ["admins"], ["edit", "read"]),
    "bob": ("bob-pw", [], ["read"]),
}

#: the users of the operators' apps (cluster operations, the admin view):
#: carol manages, dave watches, alice and bob chat
OPERATORS = {
    "alice": ("alice-pw", [], ["chat"]),
    "bob": ("bob-pw", [], ["chat"]),
    "carol": ("carol-pw", [], ["chat", "manage"]),
    "dave": ("dave-pw", [], ["watch"]),
}


class DictAuthMetadata(TGAuthMetadata):
    """Users, groups and permissions from ``users`` (``USERS`` by default):
    ``{name: (password, groups, permissions)}``; any other name is unknown."""

    def __init__(self, users=None):
        self.users = USERS if users is None else users

    def authenticate(self, environ, identity):
        user = self.users.get(identity.get("login"))
        if user is not None and identity.get("password") == user[0]:
            return identity["login"]
        return None

    def get_user(self, identity, userid):
        return {"user_name": userid} if userid else None

    def get_groups(self, identity, userid):
        return list(self.users.get(userid, (None, [], []))[1]) or (
            ["users"] if userid else []
        )

    def get_permissions(self, identity, userid):
        return list(self.users.get(userid, (None, [], []))[2])


class LoginPages(TGController):
    """The pages a login form and its redirects reach."""

    @expose()
    def index(self):
        return "home"

    @expose()
    def login(self, **kwargs):
        return "login page"

    @expose()
    def logged_in(self, **kwargs):
        return "logged in"


def base_configurator(root, app_globals=None):
    """A configurator of an app serving ``root``, with TG's authentication
    and caching components (configured by the caller's blueprint)."""
    configurator = MinimalApplicationConfigurator()
    configurator.register(SimpleAuthenticationConfigurationComponent)
    configurator.register(CachingConfigurationComponent)
    configurator.update_blueprint({
        "root_controller": root,
        "helpers": {},
        "app_globals": app_globals or type("Globals", (), {}),
    })
    return configurator


def login_configurator(root, users=None, config=None, app_globals=None):
    """A configurator of an app serving ``root`` with a form login of
    ``users`` (``USERS`` by default), then ``config``."""
    configurator = base_configurator(root, app_globals)
    configurator.update_blueprint({
        "sa_auth.enabled": True,
        "sa_auth.cookie_secret": "not-a-secret-test-value",
        "sa_auth.authmetadata": DictAuthMetadata(users),
        "sa_auth.post_login_url": "/logged_in",
        "sa_auth.post_logout_url": "/",
    })
    configurator.update_blueprint(dict(config or {}))
    return configurator


def login(base_url, user_name, password=None, users=None):
    """Log in through the app's login form; return the Cookie header value."""
    import requests

    session = requests.Session()
    response = session.post(
        base_url + "/login_handler",
        data={
            "login": user_name,
            "password": password or (users or USERS)[user_name][0],
        },
        allow_redirects=False,
        timeout=5,
    )
    assert response.status_code == 302, response.status_code
    cookie = "; ".join("%s=%s" % item for item in session.cookies.items())
    assert "authtkt=" in cookie, "login failed for %s" % user_name
    return cookie
