"""BaseNamespace: gevent-socketio's programming model, one instance per client
connection per namespace.

The engine (:mod:`tgext.socketio._engine.engine`) creates an instance when a client
joins the namespace, feeds it packets in arrival order and tears it down when
the client leaves. Everything a subclass sees (``on_<event>`` methods, the
``packet`` parameter convention, ACL methods, ``emit``/``send``/``error``,
``spawn``) behaves as it did under gevent-socketio 0.3, so namespaces written
for tgext.socketio 0.0.x run unchanged.
"""

import inspect
import logging

import gevent

from ._engine import client_errors
from ._engine.context import spawn_in_context
from ._serving.clientlog import printable

log = logging.getLogger(__name__)


class _Refusal:
    """What a dispatch returns when the method did not run (always falsy)."""

    def __init__(self, reason):
        self.reason = reason

    def __bool__(self):
        return False

    def __repr__(self):
        return "<%s>" % self.reason


#: returned by ``call_method_with_acl``/``call_method`` when the method was
#: denied (ACL or ``@require``), missing, or its arguments failed validation.
DENIED = _Refusal("denied")
INVALID = _Refusal("invalid")


def is_refusal(result):
    return result.__class__ is _Refusal


class _MethodShape:
    """How a handler takes its arguments, worked out once per function."""

    __slots__ = ("wants_packet", "names", "min_args", "max_args")

    def __init__(self, method):
        try:
            parameters = list(inspect.signature(method).parameters.values())
        except (TypeError, ValueError):  # a builtin or odd callable: trust it
            self.names, self.wants_packet, self.min_args, self.max_args = (
                (),
                False,
                0,
                None,
            )
            return
        positional = [
            parameter
            for parameter in parameters
            if parameter.kind
            in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)
        ]
        self.names = tuple(parameter.name for parameter in positional)
        self.wants_packet = len(parameters) == 1 and self.names == ("packet",)
        self.min_args = sum(
            1 for parameter in positional if parameter.default is parameter.empty
        )
        takes_varargs = any(
            parameter.kind == parameter.VAR_POSITIONAL for parameter in parameters
        )
        self.max_args = None if takes_varargs else len(positional)

    def arity_error(self, method_name, count):
        """A message when ``count`` arguments do not fit, else ``None``."""
        if count >= self.min_args and (self.max_args is None or count <= self.max_args):
            return None
        if self.max_args == self.min_args:
            expected = "%d argument%s" % (
                self.min_args,
                "" if self.min_args == 1 else "s",
            )
        elif self.max_args is None:
            expected = "at least %d arguments" % self.min_args
        else:
            expected = "%d to %d arguments" % (self.min_args, self.max_args)
        return 'The method "%s" takes %s, %d given' % (method_name, expected, count)


# function -> its _MethodShape; functions are few (they are code), so no eviction
_shape_cache = {}


def method_shape(method):
    """Return the cached :class:`_MethodShape` of a bound method."""
    function = getattr(method, "__func__", method)
    try:
        return _shape_cache[function]
    except (KeyError, TypeError):
        shape = _MethodShape(method)
    try:
        _shape_cache[function] = shape
    except TypeError:  # unhashable callable
        pass
    return shape


# event name -> its method's name, or None for a name 0.0.x refuses; names
# are what clients send, so the table is emptied when it grows past its bound
_event_methods = {}
_EVENT_METHODS_BOUND = 1024


def _method_name_of_event(name):
    """``on_<name>`` (:func:`client_errors.method_name_for_event`) if ``name`` is an
    allowed event name, else ``None``."""
    try:
        return _event_methods[name]
    except (KeyError, TypeError):  # new, or not a string at all
        pass
    if not isinstance(name, str):
        return None
    method_name = (
        client_errors.method_name_for_event(name)
        if client_errors.EVENT_NAME.match(name)
        else None
    )
    if len(_event_methods) >= _EVENT_METHODS_BOUND:
        _event_methods.clear()
    _event_methods[name] = method_name
    return method_name


# namespace class -> whether it defines exception_handler_decorator; classes
# are few (they are code), so no eviction
_decorated_classes = {}


class BaseNamespace:
    """One client's view of one namespace; subclass it and add ``on_<event>``.

    The event ``ping`` from a client calls ``on_ping`` with the event's
    arguments; what it returns is the client's acknowledgement (a tuple spreads
    into several arguments). A method whose only parameter is named ``packet``
    receives the packet dict instead (``type``, ``name``, ``args``,
    ``endpoint``, and ``id``/``ack`` when the client asked for an ack).

    Attributes: ``environ`` (the WSGI environ of the connection's handshake),
    ``request`` (its TurboGears request), ``session`` (a dict shared by every
    namespace of the connection), ``socket`` (the connection), ``ns_name``,
    ``auth`` (what the client sent with its connect, or ``None``), ``jobs``
    (greenlets started with :meth:`spawn`).

    Example::

        class PingPong(BaseNamespace):
            def on_ping(self, attack):
                self.emit("pong", {"sound": "pong"})
    """

    #: what the engine keeps for this client (a ClientState, set once when
    #: the client joins; the one attribute the package writes on the object)
    _tgsio = None
    #: whether the class publishes through the app's pub/sub hub, which
    #: must then be one for every process (``workers = N``): PubSub's
    _tgsio_shares_hub = False
    #: whether this client recovered its connection state (its transport
    #: dropped and it came back within ``socketio.connection_state_recovery``
    #: seconds: same sid, rooms, session, subscriptions; see
    #: :doc:`/recovery`); set before ``initialize``
    recovered = False

    def __init__(self, environ, ns_name, request=None):
        self.environ = environ
        self.socket = environ["socketio"]
        self.session = self.socket.session
        self.request = request
        self.ns_name = ns_name
        self.allowed_methods = None  # None means every method is allowed
        self.jobs = []
        self.reset_acl()
        super().__init__()

    # -- hooks a subclass overrides ---------------------------------------

    def initialize(self):
        """Set the instance up; called once, right after ``__init__``."""

    def recv_connect(self):
        """Called when the client joins the namespace.

        Return ``False`` (or be denied by ``@require``) to refuse the client.
        """

    def recv_disconnect(self):
        """Called when the client leaves the namespace or the connection ends."""
        self.disconnect(silent=True)

    def recv_message(self, data):
        """Called for ``socket.send(text)`` when there is no ``on_message``."""
        return data

    def recv_json(self, data):
        """Called for ``socket.send(object)`` when there is no ``on_message``."""
        return data

    def recv_error(self, packet):
        """Called for an error packet; kept for gevent-socketio compatibility."""

    # -- ACL ----------------------------------------------------------------

    def get_initial_acl(self):
        """Return the methods allowed at connection, or ``None`` for all."""
        return None

    def reset_acl(self):
        """Restore the ACL to :meth:`get_initial_acl`."""
        self.allowed_methods = self.get_initial_acl()

    def is_method_allowed(self, method_name):
        """Return whether the ACL lets the client reach ``method_name``."""
        return self.allowed_methods is None or method_name in self.allowed_methods

    def add_acl_method(self, method_name):
        """Allow ``method_name`` (a name or an iterable of names)."""
        names = {method_name} if isinstance(method_name, str) else set(method_name)
        if self.allowed_methods is None:
            self.allowed_methods = names
        else:
            self.allowed_methods.update(names)

    def del_acl_method(self, method_name):
        """Stop allowing ``method_name``.

        :raises ValueError: when the ACL allows every method (there is no
            list to remove it from).
        """
        if self.allowed_methods is None:
            raise ValueError(
                "Cannot remove %r from the ACL: no ACL restrictions are set; "
                "return a set of method names from get_initial_acl() or call "
                "add_acl_method() first." % method_name
            )
        self.allowed_methods.remove(method_name)

    def lift_acl_restrictions(self):
        """Allow every method from now on."""
        self.allowed_methods = None

    # -- dispatch -------------------------------------------------------------

    def process_packet(self, packet):
        """Route a packet dict to the method that handles its type."""
        packet_type = packet["type"]
        if packet_type == "event":
            return self.process_event(packet)
        if packet_type == "message":
            return self.call_method_with_acl("recv_message", packet, packet["data"])
        if packet_type == "json":
            return self.call_method_with_acl("recv_json", packet, packet["data"])
        if packet_type == "connect":
            return self.call_method_with_acl("recv_connect", packet)
        if packet_type == "disconnect":
            return self.call_method_with_acl("recv_disconnect", packet)
        if packet_type == "error":
            return self.call_method_with_acl("recv_error", packet)
        self._tgsio.engine.warn_about_client(
            self._tgsio.eio_sid,
            log,
            "unprocessed packet type",
            "unprocessed packet type %r [%s]",
            packet_type,
            self.ns_name,
        )
        return DENIED

    def process_event(self, packet):
        """Call ``on_<event>`` for an event packet, after checking its name."""
        name = packet["name"]
        method_name = _method_name_of_event(name)
        if method_name is None:
            self.error(
                client_errors.UNALLOWED_EVENT_NAME,
                client_errors.UNALLOWED_EVENT_NAME_MESSAGE,
            )
            return DENIED
        args = packet["args"]
        if name == "message" and not hasattr(self, "on_message"):
            # socket.send() of Socket.IO v5 is the event "message"; 0.0.x
            # namespaces handle it in recv_message/recv_json.
            data = args[0] if args else None
            packet_type = "message" if isinstance(data, str) else "json"
            return self.process_packet(dict(packet, type=packet_type, data=data))
        return self.call_method_with_acl(method_name, packet, *args)

    def call_method_with_acl(self, method_name, packet, *args):
        """Call ``method_name`` if the ACL allows it, else send the denial."""
        if not self.is_method_allowed(method_name):
            self.error(
                client_errors.METHOD_ACCESS_DENIED,
                client_errors.access_denied_message(method_name),
            )
            return DENIED
        return self.call_method(method_name, packet, *args)

    def call_method(self, method_name, packet, *args):
        """Call the method with the event's arguments (or the packet)."""
        method = getattr(self, method_name, None)
        if method is None:
            self.error(
                client_errors.NO_SUCH_METHOD,
                client_errors.no_such_method_message(method_name),
            )
            return DENIED
        shape = method_shape(method)
        if shape.wants_packet:
            args = (packet,)
        else:
            mismatch = shape.arity_error(method_name, len(args))
            if mismatch is not None:
                self.error(client_errors.INVALID_METHOD_ARGS, mismatch)
                return INVALID
        return self._tgsio_run(method, shape, args)

    def _tgsio_run(self, method, shape, args):
        """Run a handler whose arguments fit it (SocketIOTGNamespace validates)."""
        return self._tgsio_wrapped(method)(*args)

    def _tgsio_wrapped(self, method):
        # asked per event: looked up on the class once (a failed hasattr()
        # builds an AttributeError each time), on the instance every time
        cls = type(self)
        try:
            decorated = _decorated_classes[cls]
        except KeyError:
            decorated = _decorated_classes[cls] = hasattr(
                cls, "exception_handler_decorator"
            )
        if decorated or "exception_handler_decorator" in self.__dict__:
            return self.exception_handler_decorator(method)
        return method

    # -- output ---------------------------------------------------------------

    def emit(self, event, *args, callback=None, **kwargs):
        """Send the event ``event`` with ``args`` to this client.

        :param callback: called with the client's acknowledgement arguments.
        """
        if kwargs:
            raise TypeError(
                "emit() accepts only the keyword argument 'callback', not %s; "
                "pass the data as positional arguments" % ", ".join(sorted(kwargs))
            )
        self._tgsio.engine.send_event(self, event, args, callback)

    def call(self, event, *args, timeout=60):
        """Emit ``event`` and wait for the client's acknowledgement.

        :returns: the acknowledgement's arguments (one value, a tuple of
            several, or ``None``).
        :raises socketio.exceptions.TimeoutError: if the client does not
            acknowledge within ``timeout`` seconds.
        :raises RuntimeError: in ``recv_connect``: the client is connected
            only once it returned (``spawn()`` the call).
        """
        if self._tgsio.send_to != self._tgsio.eio_sid:
            raise RuntimeError(
                "call(%r) in recv_connect cannot be answered: the client is "
                "connected only once recv_connect returned; spawn() a function "
                "that makes the call instead." % (event,)
            )
        return self._tgsio.engine.call(
            event, args, to=self._tgsio.sid, namespace=self.ns_name, timeout=timeout
        )

    def send(self, message, json=False, callback=None):
        """Send ``message`` as the client's ``message`` event (``socket.on("message")``).

        ``json`` is accepted for 0.0.x compatibility: Socket.IO v5 sends any
        JSON-serializable value the same way.
        """
        self.emit("message", message, callback=callback)

    def error(self, error_name, error_message, msg_id=None, quiet=False):
        """Send the client an ``error`` event with ``(error_name, error_message)``.

        :param quiet: log the error but do not send it, as in 0.0.x.
        """
        # the message may quote what the client sent: only the name is logged
        name = printable(error_name)
        self._tgsio.engine.warn_about_client(
            self._tgsio.eio_sid,
            log,
            "error " + name,
            "error %s for %s [%s]",
            name,
            self._tgsio.sid,
            self.ns_name,
        )
        if not quiet:
            metrics = self._tgsio.engine.metrics
            if metrics is not None:
                metrics.error_sent(error_name)
            self.emit("error", error_name, error_message)

    def participants(self, room=None):
        """The sids of the clients in this namespace (or in its ``room``).

        Counted over every process sharing ``socketio.message_queue`` when
        it is Redis (see :mod:`tgext.socketio.presence`), else this
        process's. A room counts the clients put there with
        ``RoomsMixin.join``.
        """
        return self._tgsio.engine.presence.participants(self.ns_name, room)

    # -- lifecycle ------------------------------------------------------------

    def spawn(self, fn, *args, **kwargs):
        """Run ``fn`` in a greenlet with the request context; killed at disconnect."""
        self.jobs = [job for job in self.jobs if not job.dead]
        job = spawn_in_context(self._tgsio.request_locals, fn, *args, **kwargs)
        if self._tgsio.closed:
            job.kill(block=False)  # the client has left: it never runs
        else:
            self.jobs.append(job)
        return job

    def kill_local_jobs(self):
        """Kill every greenlet started with :meth:`spawn` (but the caller's own)."""
        current = gevent.getcurrent()
        others = [job for job in self.jobs if job is not current]
        self.jobs = [job for job in self.jobs if job is current]
        gevent.killall(others, block=False)

    def _tgsio_release(self):
        """Free what the instance holds once its client has left (the engine calls it)."""
        self.kill_local_jobs()

    def disconnect(self, silent=False):
        """Leave the namespace; with ``silent``, without telling the client."""
        try:
            self._tgsio.engine.disconnect_namespace(self, silent=silent)
        finally:
            self.kill_local_jobs()
