"""The only module that touches TurboGears private names.

Each function names the TurboGears versions it was checked against; the test
suite exercises every one of them over real connections, so a TG release that
changes them fails the tests rather than an application.
"""
from tg import request_local


def current_request_locals():
    """Return the ``RequestLocals`` of the request being served.

    TG 2.5.0-2.5.1: ``TGApp`` registers it on ``request_local.context`` and
    deletes ``environ["tg.locals"]`` when the request ends, so a connection
    that outlives its handshake request must keep this object itself.
    """
    return request_local.context._current_obj()


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
