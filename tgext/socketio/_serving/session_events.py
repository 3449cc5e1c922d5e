"""What happens to sessions, announced for whoever owns the process.

The engine and the server announce here the sessions that open and close
and the tables that hold an entry per connection; they know nothing of what
is done about it. The server that owns the process attaches the memory
trimmer (:mod:`tgext.socketio._memory.trimmer`) when it starts; a process
with no such server (an engine run by another server) trims nothing.
"""

import weakref


class SessionEvents:
    """Announcements of sessions opened and closed, for attached listeners.

    A listener has ``session_opened(session)``, ``session_closed(session)``
    and ``watch_table(owner, name)``; it learns of the tables announced
    before it was attached too.
    """

    def __init__(self):
        self._listeners = ()
        self._tables = []  # (weak reference to the owner, attribute name)
        #: ``socketio.malloc_above`` of the last engine made (``None``: unset)
        self.malloc_above = None

    def attach(self, listener):
        """Let ``listener`` know from now on (once, however often attached)."""
        if listener in self._listeners:
            return
        self._listeners = (*self._listeners, listener)
        for ref, name in self._tables:
            owner = ref()
            if owner is not None:
                listener.watch_table(owner, name)

    def detach(self, listener):
        self._listeners = tuple(
            item for item in self._listeners if item is not listener
        )

    def table(self, owner, name):
        """``owner.<name>`` is a dict or set holding an entry per connection,
        which nobody iterates across a greenlet switch."""
        self._tables = [(ref, attr) for ref, attr in self._tables if ref() is not None]
        self._tables.append((weakref.ref(owner), name))
        for listener in self._listeners:
            listener.watch_table(owner, name)

    def opened(self, session):
        for listener in self._listeners:
            listener.session_opened(session)

    def closed(self, session):
        for listener in self._listeners:
            listener.session_closed(session)


#: the process's announcements
session_events = SessionEvents()
