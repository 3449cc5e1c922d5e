"""What recovery keeps of a client: while it is connected, and for the window
after its transport dropped."""

import secrets


def new_pid():
    """A private id for a client's recoverable session (Socket.IO's ``pid``)."""
    return secrets.token_urlsafe(12)


class RecoveryState:
    """A connected client's recoverable session in one namespace (on its
    :class:`~tgext.socketio._engine.client_state.ClientState`).

    :param pid: the private id the client was told at its CONNECT.
    :param since: the engine's log offset when it joined the namespace.
    """

    __slots__ = (
        "pid",
        "since",
        "rooms_since",
        "channels_since",
        "connected",
    )

    def __init__(self, pid, since, rooms_since=None, channels_since=None):
        self.pid = pid
        self.since = since
        #: room -> the log offset when the client entered it
        self.rooms_since = rooms_since if rooms_since is not None else {}
        #: PubSub channel -> the log offset when the client subscribed
        self.channels_since = channels_since if channels_since is not None else {}
        #: its connect was accepted (a drop before is no recoverable session)
        self.connected = False


class DroppedClient:
    """A client whose transport dropped, for ``connection_state_recovery``
    seconds: its sid, rooms, channel subscriptions and session.

    It stands for the client in its PubSub channels meanwhile (the hub keeps
    the channels' subscriptions and presence entries for it, and sends it
    nothing): hence ``ns_name``, and ``_tgsio`` (itself) with ``engine`` and
    ``closed``.
    """

    __slots__ = (
        "engine",
        "ns_name",
        "sid",
        "state",
        "rooms",
        "subscriptions",
        "session",
        "expires",
        "hub",
        "user",
        "presence",
        "until",
    )

    #: the hub sends it nothing
    closed = True

    def __init__(
        self,
        engine,
        ns_name,
        sid,
        state,
        rooms,
        subscriptions,
        session,
        expires,
        hub=None,
        user=None,
    ):
        self.engine = engine
        self.ns_name = ns_name
        self.sid = sid
        #: its RecoveryState at the drop
        self.state = state
        #: the rooms it was in (but its sid's)
        self.rooms = rooms
        #: PubSub: {key of subscribe's arguments: channel}, or None
        self.subscriptions = subscriptions
        #: its connection's session dict
        self.session = session
        #: when the window ends (time.monotonic())
        self.expires = expires
        #: the app's PubSub hub holding its channels (None: it dropped on
        #: another process)
        self.hub = hub
        #: its TG user name (a client of another user does not take it over)
        self.user = user
        #: PubSub: {channel: its presence entry there}
        self.presence = {}
        #: across processes: the stream's offset when it came back
        self.until = None

    @property
    def _tgsio(self):
        return self

    @property
    def channels(self):
        return set(self.subscriptions.values()) if self.subscriptions else set()

    def __repr__(self):
        return "<DroppedClient %s %s>" % (self.sid, self.ns_name)
