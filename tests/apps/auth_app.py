"""TG apps with real authentication, for the @require and context tests.

``build_auth_app`` turns on TG's simple authentication (repoze.who with the
form login plugin and the auth_tkt cookie) with users kept in a dict;
``build_remote_user_app`` trusts ``REMOTE_USER``, set from a test header by
a tiny middleware standing for a front-end server.
"""
from ..conftest import with_config
from .users import USERS, DictAuthMetadata, base_configurator, login, login_configurator
from .users import LoginPages as _LoginPages

__all__ = ("USERS", "DictAuthMetadata", "login", "_LoginPages", "_configurator")

#: the apps' globals (tests/test_context.py looks for the marker)
_GLOBALS = type("Globals", (), {"marker": "the app's globals"})


def _configurator(root, extra):
    configurator = base_configurator(root, _GLOBALS)
    configurator.update_blueprint(extra)
    return configurator


def build_auth_app(controller, mount="socketio"):
    """Form login at /login_handler, identity in the auth_tkt cookie."""
    root = _LoginPages()
    root.__dict__[mount] = controller
    return with_config(login_configurator(root, app_globals=_GLOBALS).make_wsgi_app())


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
