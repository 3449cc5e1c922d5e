"""The recent events of one process, for the admin view.

Kept only for an app that mounts a :class:`tgext.socketio.SocketIOAdminController`
(or whose overview an admin has asked for): the engines of any other app keep
``event_log = None`` and pay one attribute test per event. What is kept is
bounded: the last :data:`SIZE` events, their names cut to
:data:`MAX_NAME_LENGTH` characters, never their arguments (they carry user
data).
"""

import collections
import time

#: events kept per process (the oldest go first)
SIZE = 200
#: characters of an event's name kept (names come from clients)
MAX_NAME_LENGTH = 100


class EventLog:
    """The last ``size`` events the engines of one app handled in this process.

    :param size: how many to keep.
    """

    def __init__(self, size=SIZE):
        self._entries = collections.deque(maxlen=size)

    def received(self, namespace, name, sid):
        """Keep that the client ``sid`` of ``namespace`` sent event ``name``."""
        if type(name) is not str:  # a client may send [42, ...]
            name = repr(name)
        self._entries.append((time.time(), namespace, name[:MAX_NAME_LENGTH], sid))

    def recent(self):
        """The events kept, oldest first, as dicts of plain data."""
        return [
            {
                "time": at,
                "namespace": namespace,
                "event": name,
                "sid": sid,
                "direction": "in",
            }
            for at, namespace, name, sid in list(self._entries)
        ]


def watch(runtime):
    """Have every engine of ``runtime`` (an app's runtime in this process),
    and every engine it builds later, keep its events; return the log.

    Calling it again changes nothing.
    """
    if runtime.event_log is None:
        runtime.event_log = EventLog()
    for engine in runtime.engines:
        engine.event_log = runtime.event_log
    return runtime.event_log
