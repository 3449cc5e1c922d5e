"""The TurboGears request context around handler calls and spawned greenlets.

TG's request locals are greenlet-local once gevent has patched ``threading``:
a greenlet the engine or a user starts begins with no TG context at all. Every
call into namespace code goes through here, so that ``tg.request``,
``tg.config``, ``tg.app_globals``, ``tg.tmpl_context``, ``tg.cache`` and
``tg.translator`` are those of the connection's handshake request.
"""

import logging

import gevent

from .._upstream.tg import pop_request_locals, push_request_locals

log = logging.getLogger("tgext.socketio.context")


def call_in_context(request_locals, function, *args, **kwargs):
    """Call ``function`` with ``request_locals`` as the TG context."""
    if request_locals is None:
        return function(*args, **kwargs)
    push_request_locals(request_locals)
    try:
        return function(*args, **kwargs)
    finally:
        pop_request_locals(request_locals)


def spawn_in_context(request_locals, function, *args, **kwargs):
    """Start ``function`` in a new greenlet that runs in ``request_locals``.

    An exception it raises is logged here, the greenlet's boundary, rather
    than printed to stderr by gevent.
    """
    return gevent.spawn(_run_job, request_locals, function, *args, **kwargs)


def _run_job(request_locals, function, *args, **kwargs):
    try:
        return call_in_context(request_locals, function, *args, **kwargs)
    except Exception:  # the boundary where a spawned user job runs
        log.exception("Unhandled exception in spawned job %r", function)
        return None
