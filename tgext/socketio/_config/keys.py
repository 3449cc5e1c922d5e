"""The keys the package sets in WSGI environs and app configs, in one place.

This module imports nothing: the server module reads it before gevent has
patched the standard library.
"""

#: environ: the TG context (``RequestLocals``) of a connection's handshake
REQUEST_LOCALS_KEY = "tgext.socketio.request_locals"

#: environ: the server serving a Socket.IO request (see ``SocketIOServer.own``)
SERVER_KEY = "tgext.socketio.server"

#: environ: the ``SessionTicket`` of an Engine.IO handshake (see admission.py)
SESSION_TICKET_KEY = "tgext.socketio.session_ticket"

#: app config: the app's ``AppRuntime`` (its engines and pub/sub hub)
RUNTIME_KEY = "tgext.socketio.runtime"

#: starts the name every PubSub channel has on the backend (Redis), so that
#: no channel a client may name is the message queue's (``socketio.channel``,
#: which may not start with it)
PUBSUB_CHANNEL_PREFIX = "pubsub:"
