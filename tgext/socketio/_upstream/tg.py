"""The only module that touches TurboGears private names.

Each function names the TurboGears versions it was checked against; the test
suite exercises every one of them over real connections, so a TG release that
changes them fails the tests rather than an application.
"""

from tg import request_local
from tg.predicates import NotAuthorizedError
from tg.support.registry import StackedObjectProxy
from tg.wsgiapp import TGApp

from . import relies_on

LIBRARY = "TurboGears2"
CHECKED = "2.5.0-2.5.1"

relies_on(LIBRARY, CHECKED, StackedObjectProxy, "_current_obj", ["self"])
relies_on(LIBRARY, CHECKED, StackedObjectProxy, "_push_object", ["self", "obj"])
relies_on(LIBRARY, CHECKED, StackedObjectProxy, "_pop_object", ["self", "obj"])
relies_on(LIBRARY, CHECKED, TGApp, "_get_controller_instance", ["self", "controller"])


def current_request_locals():
    """Return the ``RequestLocals`` of the request being served.

    TG 2.5.0-2.5.1: ``TGApp`` registers it on ``request_local.context`` and
    deletes ``environ["tg.locals"]`` when the request ends, so a connection
    that outlives its handshake request must keep this object itself.
    """
    return request_local.context._current_obj()


def root_controller_of(app):
    """The root controller instance ``app`` (a ``TGApp``) dispatches to, or ``None``.

    TG 2.5.0-2.5.1: ``TGApp`` keeps ``tg.root_controller`` when the config
    gives one. An app in the layout ``gearbox quickstart`` makes names its
    package instead: at its first request ``TGApp`` imports
    ``<package>.controllers.root``, instantiates ``RootController`` and keeps
    the instance in ``controller_instances``. Asking for it the same way now
    makes that instance the one requests reach. ``None`` for an app with
    neither (no package, so no controllers path).
    """
    config = app.config
    if config.get("tg.root_controller") is None:
        paths = config.get("paths") or {}
        if paths.get("controllers") is None or not config.get("package_name"):
            return None
    return app._get_controller_instance("root")


def current_app_config():
    """The TG config of this request, or the process's, or ``None`` (TG 2.5)."""
    try:
        return request_local.config._current_obj()
    except (AttributeError, TypeError):
        return None


def in_request():
    """Tell whether a TG request (or a handler's context) is active (TG 2.5)."""
    try:
        request_local.context._current_obj()
    except (AttributeError, TypeError):
        return False
    return True


def push_request_locals(request_locals):
    """Make ``request_locals`` the TG context of the running greenlet.

    TG 2.5.0-2.5.1: ``tg.request``, ``tg.tmpl_context``, ``tg.app_globals``,
    ``tg.cache``, ``tg.translator`` read ``request_local.context``; ``tg.config``
    reads ``request_local.config``. Both are ``StackedObjectProxy`` instances,
    greenlet-local once gevent has patched ``threading``.
    """
    request_local.context._push_object(request_locals)
    request_local.config._push_object(request_locals.config)


def pop_request_locals(request_locals):
    """Undo :func:`push_request_locals` (TG 2.5.0-2.5.1)."""
    request_local.config._pop_object(request_locals.config)
    request_local.context._pop_object(request_locals)


def context_is_greenlet_local():
    """Tell whether TG's request context is local to each greenlet.

    TG creates its ``threading.local`` when ``tg`` is first imported; if gevent
    patched ``threading`` only afterwards, every greenlet shares one context and
    concurrent handlers see each other's requests.
    """
    import gevent.local

    local = request_local.context.__dict__["____local__"]
    return isinstance(local, gevent.local.local)


def decoration_of(method):
    """Return the TG ``Decoration`` of a (bound) method, or ``None``.

    TG 2.5.0-2.5.1: ``@require`` and ``@validate`` store themselves on the
    function as ``func.decoration`` (``requirements`` and ``validations``
    lists). Unlike ``Decoration.get_decoration`` this never creates one.
    """
    function = getattr(method, "__func__", method)
    return getattr(function, "decoration", None)


def requirements_met(method, environ):
    """Tell whether every ``@require`` predicate of ``method`` holds.

    ``@require(None)`` never holds, as in tgext.socketio 0.0.x. Predicates read
    the identity in ``environ``: the one TG's auth stack set on the handshake.
    TG 2.5.0-2.5.1: each ``require`` keeps its predicate as ``.predicate``; its
    own ``_check_authorization`` hook is HTTP-only (status codes, flash).
    """
    decoration = decoration_of(method)
    if decoration is None:
        return True
    for requirement in decoration.requirements:
        predicate = requirement.predicate
        if predicate is None:
            return False
        try:
            predicate.check_authorization(environ)
        except NotAuthorizedError:
            return False
    return True


def validation_intents(method):
    """The ``@validate`` intents of ``method`` (TG 2.5.0-2.5.1 ``validations``)."""
    decoration = decoration_of(method)
    return decoration.validations if decoration is not None else ()


def validation_exceptions(config):
    """The exception classes TG counts as validation errors (``validation.exceptions``)."""
    return tuple(config.get("validation.exceptions") or ())


def run_validation(intent, config, method, params):
    """Validate ``params`` with one ``@validate`` intent, as TG does for actions.

    TG 2.5.0-2.5.1 ``_ValidationIntent.check`` handles dicts of validators, schema
    objects (``validate(params)``), ``needs_controller`` schemas and the
    registered ``validation.validators``. Two 0.0.x forms it no longer takes
    are handled here: schemas defining ``validate(self, params, state)`` (called
    with ``state=None``) and a single ``to_python`` validator for all the
    arguments.
    """
    validators = intent.validators
    if not validators or isinstance(validators, dict):
        return intent.check(config, method, params)
    schema_validate = getattr(validators, "validate", None)
    if schema_validate is not None:
        if not getattr(validators, "needs_controller", False) and _takes_state(
            schema_validate
        ):
            return schema_validate(params, None)
        return intent.check(config, method, params)
    registered = config.get("validation.validators") or {}
    if hasattr(validators, "to_python") and not isinstance(
        validators, tuple(registered)
    ):
        # One validator for all the arguments (a FormEncode Schema, a
        # Convert): TG 2.3 applied it to the whole dict, and 0.0.x
        # namespaces rely on that; TG 2.5 only knows registered classes.
        return validators.to_python(params)
    return intent.check(config, method, params)


def _takes_state(function):
    import inspect

    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    required = [
        parameter
        for parameter in parameters
        if parameter.default is parameter.empty
        and parameter.kind
        in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)
    ]
    return len(required) == 2


def explode_validation_error(exception, config):
    """Turn a validation exception into ``{field: message}`` or one message.

    Uses TG 2.5's ``validation.explode`` registry (``TGValidationError`` is
    always there; an app registers FormEncode's ``Invalid`` itself), falling
    back to the exception's ``error_dict``.
    """
    errors = None
    for exception_class, explode in (config.get("validation.explode") or {}).items():
        if isinstance(exception, exception_class):
            errors = explode(exception).get("errors")
            break
    else:
        errors = getattr(exception, "error_dict", None)
    if isinstance(errors, dict) and errors:
        return {str(field): str(error) for field, error in errors.items()}
    return str(exception)
