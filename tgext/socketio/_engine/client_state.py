"""ClientState: what the engine keeps for one client in one namespace.

gevent-socketio's model makes the namespace instance the user's object:
applications subclass ``BaseNamespace`` and set their own attributes on it.
Everything this package keeps for the client lives in one declared object
on it, ``instance._tgsio``, set once by the engine when the client joins and
read by the dispatcher, the mixins, PubSub and presence; nothing else is
written on the user's object.
"""


class ClientState:
    """The state of one client in one namespace.

    :param engine: the :class:`~tgext.socketio._engine.engine.SocketIOEngine` serving it.
    :param sid: its Socket.IO session id in the namespace.
    :param eio_sid: its connection's Engine.IO session id.
    :param send_to: where what it is sent goes: ``eio_sid``, or what holds
        its output while its connect is decided.
    :param request_locals: TG's context of the connection's handshake.
    """

    __slots__ = (
        "engine",
        "sid",
        "eio_sid",
        "send_to",
        "request_locals",
        "inbox",
        "draining",
        "closed",
        "leaving",
        "hub",
        "subscriptions",
        "recovery",
    )

    def __init__(self, engine, sid, eio_sid, send_to, request_locals):
        self.engine = engine
        self.sid = sid
        self.eio_sid = eio_sid
        self.send_to = send_to
        self.request_locals = request_locals
        #: events not handled yet, ``(ack id, [name, *args])``, in order
        self.inbox = []
        #: whether a worker runs the inbox (or the connect is not decided yet)
        self.draining = True
        #: the client has left: emit() and spawn() do nothing any more
        self.closed = False
        #: the namespace itself asked to disconnect the client
        self.leaving = False
        #: PubSub: the app's hub, and {key of subscribe's arguments: channel}
        self.hub = None
        self.subscriptions = None
        #: its recoverable session (a RecoveryState), when the engine
        #: recovers connection state
        self.recovery = None
