"""emit(): send an event from outside a namespace handler.

From a controller action or a greenlet of the serving process, the event goes
through the app's own Socket.IO engines (every ``SocketIOController`` that
serves the namespace). With ``message_queue`` (or ``socketio.message_queue``
in the config) it is published on that queue instead, which is how another
process (a worker, a cron job) reaches clients connected to the servers.
"""

import logging

from ._config.keys import RUNTIME_KEY
from ._upstream.tg import current_app_config, in_request

log = logging.getLogger(__name__)


_write_only_managers = {}  # message queue URL -> python-socketio manager


def emit(
    event,
    *args,
    namespace="/",
    to=None,
    skip_sid=None,
    message_queue=None,
    channel="socketio",
):
    """Send ``event`` with ``args`` to clients of ``namespace``.

    :param to: a room name or a client's sid; ``None`` for every client of
        the namespace.
    :param skip_sid: a sid (or list of sids) not to send to.
    :param message_queue: a ``redis://`` (or Kombu) URL shared with the servers,
        to emit from a process that serves no clients. Defaults to
        ``socketio.message_queue`` of the current TG config when that is set
        and no engine runs in this process.
    :raises RuntimeError: when there is neither an engine nor a queue to use.

    Example (in a controller action)::

        from tgext.socketio import emit

        @expose("json")
        def publish_score(self, score):
            emit("score", {"value": score}, namespace="/dashboard")
            return {"ok": True}
    """
    app_config = current_app_config() if message_queue is None else None
    if app_config is not None:
        runtime = app_config.get(RUNTIME_KEY)
        engines = [
            engine
            for engine in (runtime.engines if runtime is not None else ())
            if namespace in engine.namespace_classes
        ]
        for engine in engines:
            engine.emit(event, args, to=to, namespace=namespace, skip_sid=skip_sid)
        if engines:
            return
        message_queue = app_config.get("socketio.message_queue") or None
        channel = app_config.get("socketio.channel") or channel
        if message_queue is None and in_request():
            # The app serves no Socket.IO request yet: no client to reach.
            log.debug("emit %r to %s: no client connected yet", event, namespace)
            return
    if message_queue is None:
        raise RuntimeError(
            "emit(%r) found no Socket.IO server for namespace %s in this process "
            "and no message queue; call it while serving a request of the app, "
            "or pass message_queue= (the socketio.message_queue URL of the "
            "servers) to reach them through Redis." % (event, namespace)
        )
    manager = _write_only_manager(message_queue, channel)
    manager.emit(event, data=args, namespace=namespace, room=to, skip_sid=skip_sid)


def _write_only_manager(url, channel):
    from ._engine.client_manager import write_only_manager

    key = (url, channel)
    manager = _write_only_managers.get(key)
    if manager is None:
        manager = _write_only_managers[key] = write_only_manager(url, channel)
    return manager
