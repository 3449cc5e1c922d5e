"""TG apps with real authentication, for the @require and context tests.

``build_auth_app`` turns on TG's simple authentication (repoze.who with the
form login plugin and the auth_tkt cookie) with users kept in a dict;
``build_remote_user_app`` trusts ``REMOTE_USER``, set from a test header by
a tiny middleware standing for a front-end server.
"""
from tg import MinimalApplicationConfigurator, TGController, expose
from tg.configurator.components.auth import SimpleAuthenticationConfigurationComponent
from tg.configurator.components.caching import CachingConfigurationComponent

from ..conftest import with_config
from .users import USERS, DictAuthMetadata  # noqa: F401 (used by other tests)


class _LoginPages(TGController):
    @expose()
    def index(self):
        return "home"

    @expose()
    def login(self, **kwargs):
        return "login page"

    @expose()
    def logged_in(self, **kwargs):
        return "logged in"


def _configurator(root, extra):
    configurator = MinimalApplicationConfigurator()
    configurator.register(SimpleAuthenticationConfigurationComponent)
    configurator.register(CachingConfigurationComponent)
    configurator.update_blueprint({
        "root_controller": root,
        "helpers": {},
        "app_globals": type("Globals", (), {"marker": "the app's globals"}),
    })
    configurator.update_blueprint(extra)
    return configurator


def build_auth_app(controller, mount="socketio"):
    """Form login at /login_handler, identity in the auth_tkt cookie."""
    root = _LoginPages()
    root.__dict__[mount] = controller
    configurator = _configurator(root, {
        "sa_auth.enabled": True,
        "sa_auth.cookie_secret": "not-a-secret-test-value",
        "sa_auth.authmetadata": DictAuthMetadata(),
        "sa_auth.post_login_url": "/logged_in",
        "sa_auth.post_logout_url": "/",
    })
    return with_config(configurator.make_wsgi_app())


class RemoteUserFromHeader:
    """Sets ``REMOTE_USER`` from ``X-Test-User``, as a front-end server would."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        user = environ.get("HTTP_X_TEST_USER")
        if user:
            environ["REMOTE_USER"] = user
        return self.app(environ, start_response)


def build_remote_user_app(controller, mount="socketio"):
    """Identity from ``REMOTE_USER`` (``skip_authentication``)."""
    root = _LoginPages()
    root.__dict__[mount] = controller
    configurator = _configurator(root, {
        "sa_auth.enabled": True,
        "skip_authentication": True,
        "sa_auth.authmetadata": DictAuthMetadata(),
    })
    app = with_config(configurator.make_wsgi_app())
    return with_config(RemoteUserFromHeader(app), wrapped=app)


def login(base_url, user_name, password=None):
    """Log in through the app's login form; return the Cookie header value."""
    import requests

    session = requests.Session()
    response = session.post(
        base_url + "/login_handler",
        data={"login": user_name, "password": password or USERS[user_name][0]},
        allow_redirects=False,
        timeout=5,
    )
    assert response.status_code == 302, response.status_code
    cookie = "; ".join("%s=%s" % (name, value) for name, value in session.cookies.items())
    assert "authtkt=" in cookie, "login failed for %s" % user_name
    return cookie
