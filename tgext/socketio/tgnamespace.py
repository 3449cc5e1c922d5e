"""SocketIOTGNamespace: a BaseNamespace whose handlers honour TG's decorators.

``@require(predicate)`` on ``on_<event>``, ``recv_connect`` or
``subscribe_<channel>`` is checked against the identity TG's auth stack saw
on the connection's handshake; ``@validate`` runs TG 2.5's own validation
(dicts of validators, schemas, ``Convert``, type hints) on the event's
arguments, bound to the handler's parameter names.
"""

import inspect

from ._engine import client_errors
from ._upstream import tg as _tg
from .namespace import INVALID, BaseNamespace


class SocketIOTGNamespace(BaseNamespace):
    """A namespace whose methods may use TG's ``@require`` and ``@validate``.

    A denied method answers ``method_access_denied`` and does not run; failed
    validation answers ``invalid_method_args`` with ``{field: message}`` (or
    one message), unless the ``@validate`` names an ``error_handler``, which
    then runs with the event's arguments and whose return is the ack.

    Example::

        class Game(SocketIOTGNamespace):
            @require(predicates.not_anonymous())
            @validate()
            def on_move(self, x: int, y: int):
                return x, y
    """

    def is_method_allowed(self, method_name):
        """Return whether the ACL and the method's ``@require`` let the client
        reach ``method_name`` (the identity of the connection's handshake)."""
        method = getattr(self, method_name, None)
        if method is not None and not _tg.requirements_met(method, self.environ):
            return False
        return super().is_method_allowed(method_name)

    def _tgsio_run(self, method, shape, args):
        intents = _tg.validation_intents(method)
        if not intents:
            return super()._tgsio_run(method, shape, args)
        # the dict itself, not TG's proxy: the config of the context the
        # dispatcher pushed for this instance
        request_locals = self._tgsio.request_locals if self._tgsio is not None else None
        config = (
            request_locals.config
            if request_locals is not None
            else _tg.current_app_config()
        )
        failures = _tg.validation_exceptions(config)
        params = dict(zip(shape.names, args))
        for intent in intents:
            try:
                params = _tg.run_validation(intent, config, method, params)
            except failures as failure:
                return self._validation_failed(intent, failure, config, args)
        # validated values go by name, as 0.0.x called the handler
        return self._tgsio_wrapped(method)(**params)

    def _validation_failed(self, intent, failure, config, args):
        handler = intent.error_handler
        if handler is not None:
            # A function from the class body is unbound: give it this instance.
            if inspect.isfunction(handler):
                return handler(self, *args)
            return handler(*args)
        self.error(
            client_errors.INVALID_METHOD_ARGS,
            _tg.explode_validation_error(failure, config),
        )
        return INVALID
