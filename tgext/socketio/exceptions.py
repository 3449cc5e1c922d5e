"""The exceptions tgext.socketio raises to developers and operators."""

from tg.configuration.utils import TGConfigError


class SocketIOExtError(Exception):
    """Base class for errors raised by tgext.socketio."""


class ConfigurationError(SocketIOExtError, TGConfigError):
    """A configuration value is missing or invalid; the message names the key."""


class MonkeyPatchError(SocketIOExtError, RuntimeError):
    """gevent patched the standard library too late for TurboGears."""
