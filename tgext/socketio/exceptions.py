"""The exceptions tgext.socketio raises to developers and operators."""

from tg.configuration.utils import TGConfigError


class SocketIOExtError(Exception):
    """Base class for errors raised by tgext.socketio."""


class ConfigurationError(SocketIOExtError, TGConfigError):
    """A configuration value is missing or invalid; the message names the key."""


class MonkeyPatchError(SocketIOExtError, RuntimeError):
    """gevent patched the standard library too late for TurboGears."""


class WorkerDiedError(SocketIOExtError, RuntimeError):
    """The worker processes of ``workers = N`` kept dying at start-up (or
    the process forking them died), so the server stopped.

    Raised by the runner so that the command serving it exits with a failure
    (gearbox takes ``SystemExit`` for a normal end), for a supervisor to
    restart the server.
    """


class ClusterOperationError(SocketIOExtError, RuntimeError):
    """A cluster operation (:func:`tgext.socketio.fetch_clients` and its
    siblings) failed in one of the processes it reached; the message names
    the process and the error it logged."""
