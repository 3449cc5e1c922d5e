"""SocketIOAdminController: a page showing who is connected, across every
process serving the app, guarded by a TG predicate.

Mount it as any TG controller; the predicate is required::

    from tg.predicates import has_permission
    from tgext.socketio import SocketIOAdminController

    class RootController(BaseController):
        socketio_admin = SocketIOAdminController(has_permission("manage"))

It gathers its data with the cluster operation ``overview``
(:mod:`tgext.socketio._cluster.overview`), as :func:`tgext.socketio.fetch_clients`
does: every process sharing ``socketio.message_queue`` answers. An app that
mounts one keeps, in each process, the last events its clients sent
(:mod:`tgext.socketio._cluster.events`); other apps keep none.
"""

import json
import logging
from urllib.parse import urlsplit

import tg
from tg import TGController, expose, request
from tg.controllers.decoratedcontroller import DecoratedController
from webob import Response

from . import cluster
from ._admin import page
from ._cluster import events, local
from ._cluster.overview import merge
from ._engine.connection import user_of
from ._engine.runtime import own_origins, runtime_of
from ._upstream.tg import root_controller_of
from .controller import _static_items
from .exceptions import ConfigurationError

log = logging.getLogger(__name__)

#: seconds each process gets to describe itself (answers are awaited a
#: little longer: see :mod:`tgext.socketio._cluster.bus`)
OVERVIEW_TIMEOUT = 1.0


class SocketIOAdminController(TGController):
    """Show the app's Socket.IO servers, namespaces, rooms, PubSub channels,
    clients and recent events, over every process; disconnect a client or
    every connection of a user.

    ``index`` is the page (it polls ``state`` every two seconds), ``state``
    the same data as JSON, ``disconnect`` (``POST`` from the page's own
    origin) the action.

    :param predicate: a TG predicate (``has_permission("manage")``), checked
        as the controller's ``allow_only`` on the app's own login: anonymous
        users get TG's 401 (your login page), others 403. Required.
    :param read_only: show, never act: no button, ``disconnect`` answers 403.
    :raises ConfigurationError: without a predicate.

    Example::

        class RootController(BaseController):
            socketio_admin = SocketIOAdminController(has_permission("manage"))
            socketio_watch = SocketIOAdminController(
                has_permission("watch"), read_only=True
            )
    """

    def __init__(self, predicate=None, read_only=False):
        if predicate is None:
            raise ConfigurationError(
                "SocketIOAdminController(predicate) needs a TG predicate, such as "
                'SocketIOAdminController(has_permission("manage")): the page lists '
                "every client and disconnects them, it is never open to anyone."
            )
        if not (
            hasattr(predicate, "check_authorization") or hasattr(predicate, "predicate")
        ):
            raise ConfigurationError(
                "SocketIOAdminController(predicate=%r): the predicate must be a TG "
                "predicate from tg.predicates, such as has_permission('manage')."
                % (predicate,)
            )
        super().__init__()
        self.allow_only = predicate
        self.read_only = bool(read_only)

    @expose()
    def index(self):
        html, nonce = page.render(_base_path(request.path), self.read_only)
        response = Response(html, content_type="text/html", charset="utf-8")
        response.headers.update(_NO_STORE)
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; script-src 'nonce-%s'; style-src 'nonce-%s'; "
            "connect-src 'self'; img-src 'self'; base-uri 'none'; "
            "form-action 'none'; frame-ancestors 'none'" % (nonce, nonce)
        )
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    @expose()
    def state(self):
        """The overview of every process, as JSON."""
        results, asked = cluster._run(
            "overview", {}, OVERVIEW_TIMEOUT, None, "socketio"
        )
        overview = merge(results, asked)
        overview["read_only"] = self.read_only
        overview["answered_by"] = local.server_name()
        return _json(overview)

    @expose()
    def disconnect(self, sid=None, namespace=None, user=None, **unknown):
        """Disconnect the client ``sid`` of ``namespace``, or every
        connection of TG user ``user``, in every process (``POST`` only)."""
        if request.method != "POST":
            response = _json({"error": "use POST"}, status=405)
            response.headers["Allow"] = "POST"
            return response
        if not _same_origin(request):
            log.warning(
                "refused a Socket.IO admin disconnect from origin %r (page at %s)",
                request.headers.get("Origin") or request.headers.get("Referer"),
                request.host_url,
            )
            return _json({"error": "cross-site request refused"}, status=403)
        if self.read_only:
            return _json({"error": "this admin view is read-only"}, status=403)
        if unknown or not (sid or user) or (sid and not namespace):
            return _json(
                {"error": "send sid= with namespace=, or user=, and nothing else"},
                status=400,
            )
        count = cluster.disconnect_clients(
            namespace or None, to=sid or None, user=user or None
        )
        log.info(
            "Socket.IO admin %r disconnected %d clients (sid=%r namespace=%r user=%r)",
            user_of(request.environ),
            count,
            sid,
            namespace,
            user,
        )
        return _json({"disconnected": count})


_NO_STORE = {"Cache-Control": "no-store"}


def _json(data, status=200):
    body = json.dumps(data, default=str).encode("utf-8")
    response = Response(
        body, status=status, content_type="application/json", charset="utf-8"
    )
    response.headers.update(_NO_STORE)
    return response


def _base_path(path):
    """The controller's own URL path, from the page's (``/admin/``,
    ``/admin/index``), with no trailing ``/``."""
    path = path.rstrip("/")
    if path.endswith("/index"):
        path = path[: -len("/index")]
    return path


def _same_origin(request):
    """Whether the request comes from a page of this site: its ``Origin``
    (else its ``Referer``) is the request's own ``scheme://host`` (or the one
    ``X-Forwarded-Proto``/``-Host`` give). Neither header: refused, since
    browsers send ``Origin`` with every ``POST``."""
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        referer = request.headers.get("Referer")
        if not referer:
            return False
        parts = urlsplit(referer)
        origin = "%s://%s" % (parts.scheme, parts.netloc)
    own = own_origins(request.environ)
    return origin.lower() in {candidate.lower() for candidate in own}


def keep_events_if_mounted(app):
    """Have ``app``'s engines keep their recent events if it mounts a
    :class:`SocketIOAdminController` (TG's ``configure_new_app`` hook).

    Registered when this module is imported, which an app mounting the
    controller does before it is made (or, in the quickstart layout, while
    :func:`tgext.socketio.controller.start_app_runtime` imports its root
    controller: TG's hooks then run this one after that one).
    """
    root = root_controller_of(app)
    if root is not None and _mounts_admin(root):
        events.watch(runtime_of(app.config))


def _mounts_admin(root, max_depth=8):
    seen, pending = set(), [(root, 0)]
    while pending:
        controller, depth = pending.pop()
        if isinstance(controller, SocketIOAdminController):
            return True
        if (
            not isinstance(controller, DecoratedController)
            or id(controller) in seen
            or depth >= max_depth
        ):
            continue
        seen.add(id(controller))
        pending.extend((child, depth + 1) for _name, child in _static_items(controller))
    return False


tg.hooks.register("configure_new_app", keep_events_if_mounted)
