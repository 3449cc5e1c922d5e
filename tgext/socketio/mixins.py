"""BroadcastMixin and RoomsMixin: emitting to more than one client.

Both go through python-socketio's client manager, so with
``socketio.message_queue`` set they reach clients of every process.
"""

from ._engine import client_errors


class BroadcastMixin:
    """Emit to every client of the namespace.

    Mix it in before the namespace class:
    ``class Chat(BroadcastMixin, SocketIOTGNamespace)``.
    """

    def broadcast_event(self, event, *args):
        """Send ``event`` to every client of this namespace, this one included."""
        self._tgsio.engine.emit(event, args, namespace=self.ns_name)

    def broadcast_event_not_me(self, event, *args):
        """Send ``event`` to every client of this namespace but this one."""
        self._tgsio.engine.emit(
            event, args, namespace=self.ns_name, skip_sid=self._tgsio.sid
        )


class RoomsMixin:
    """Rooms inside a namespace: ``join``, ``leave``, ``emit_to_room``.

    The rooms a client joined are also listed in ``self.session["rooms"]`` as
    ``"<namespace>_<room>"``, as in 0.0.x.
    """

    def _session_rooms(self):
        return self.session.setdefault("rooms", set())

    def join(self, room):
        """Put this client in ``room``.

        :returns: ``True``; ``False`` when the client is in
            ``socketio.max_rooms`` rooms of this namespace already (it then
            gets the error ``too_many_rooms``).
        """
        engine = self._tgsio.engine
        rooms = self._session_rooms()
        limit = engine.max_rooms
        entry = self.ns_name + "_" + room
        if (
            entry not in rooms
            and len(rooms) >= limit
            and (
                sum(1 for joined in rooms if joined.startswith(self.ns_name + "_"))
                >= limit
            )
        ):
            self.error(
                client_errors.TOO_MANY_ROOMS,
                client_errors.too_many_rooms_message(limit),
            )
            return False
        engine.enter_room(self._tgsio.sid, room, namespace=self.ns_name)
        engine.presence.add(self.ns_name, room, self._tgsio.sid)
        rooms.add(entry)
        return True

    def leave(self, room):
        """Take this client out of ``room``."""
        engine = self._tgsio.engine
        engine.leave_room(self._tgsio.sid, room, namespace=self.ns_name)
        engine.presence.remove(self.ns_name, room, self._tgsio.sid)
        self._session_rooms().discard(self.ns_name + "_" + room)

    def emit_to_room(self, room, event, *args):
        """Send ``event`` to everyone in ``room`` but this client."""
        self._tgsio.engine.emit(
            event, args, to=room, namespace=self.ns_name, skip_sid=self._tgsio.sid
        )
