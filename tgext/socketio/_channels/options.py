"""What a PubSubTGNamespace declares about its channels: history for late
joiners and presence, per channel name pattern.

Example::

    class Chat(PubSubTGNamespace):
        channel_options = {
            "room-*": {"history": 20, "history_seconds": 3600, "presence": True},
        }

Patterns are ``fnmatch`` patterns over the channel actually subscribed (what
``subscribe_<channel>`` returned); the first that matches, in the order
written, applies. Every process serving the app reads the same
declarations, so a publication made anywhere is kept, and a join seen
anywhere is told.
"""

import fnmatch

from ..exceptions import ConfigurationError

#: the most publications a channel may keep
MAX_HISTORY = 1000
#: how long history is kept when ``history_seconds`` is not given
DEFAULT_HISTORY_SECONDS = 3600.0

_KEYS = ("history", "history_seconds", "presence")


class ChannelOptions:
    """The options of the channels a pattern matches."""

    __slots__ = ("history", "history_seconds", "presence")

    def __init__(
        self, history=0, history_seconds=DEFAULT_HISTORY_SECONDS, presence=False
    ):
        self.history = history
        self.history_seconds = history_seconds
        self.presence = presence

    def __repr__(self):
        return "ChannelOptions(history=%r, history_seconds=%r, presence=%r)" % (
            self.history,
            self.history_seconds,
            self.presence,
        )


def declared_options(namespace_class):
    """``[(pattern, ChannelOptions)]`` of a namespace class's ``channel_options``.

    :raises ConfigurationError: naming the class and what to fix.
    """
    declared = getattr(namespace_class, "channel_options", None) or {}
    where = "%s.channel_options" % namespace_class.__name__
    if not isinstance(declared, dict):
        raise ConfigurationError(
            "%s must be a dict of channel name patterns to options, such as "
            '{"room-*": {"history": 20, "presence": True}}' % where
        )
    parsed = []
    for pattern, options in declared.items():
        if not isinstance(pattern, str) or not isinstance(options, dict):
            raise ConfigurationError(
                "%s[%r] must map a pattern (a string) to a dict of options"
                % (where, pattern)
            )
        unknown = sorted(set(options) - set(_KEYS))
        if unknown:
            raise ConfigurationError(
                "%s[%r] has %s; the options are %s"
                % (where, pattern, ", ".join(unknown), ", ".join(_KEYS))
            )
        parsed.append((pattern, _checked(where, pattern, options)))
    return parsed


def _checked(where, pattern, options):
    history = options.get("history", 0)
    seconds = options.get("history_seconds", DEFAULT_HISTORY_SECONDS)
    presence = options.get("presence", False)
    if type(history) is not int or not 0 <= history <= MAX_HISTORY:
        raise ConfigurationError(
            "%s[%r]: history = %r is not a number of publications from 0 to %d"
            % (where, pattern, history, MAX_HISTORY)
        )
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or seconds <= 0
    ):
        raise ConfigurationError(
            "%s[%r]: history_seconds = %r is not a positive number of seconds"
            % (where, pattern, seconds)
        )
    if not isinstance(presence, bool):
        raise ConfigurationError(
            "%s[%r]: presence = %r is not True or False" % (where, pattern, presence)
        )
    return ChannelOptions(history, float(seconds), presence)


class ChannelRegistry:
    """The declarations of every namespace an app serves; which apply to a channel."""

    #: channel names whose answer is remembered (clients name channels)
    CACHE_SIZE = 4096

    def __init__(self):
        self._patterns = []  # (pattern, ChannelOptions), in order
        self._cache = {}

    def add(self, patterns):
        for pattern, options in patterns:
            if all(pattern != known for known, _options in self._patterns):
                self._patterns.append((pattern, options))
        self._cache.clear()

    def options_for(self, channel):
        """The options of ``channel``, or ``None`` when none is declared."""
        try:
            return self._cache[channel]
        except KeyError:
            pass
        found = None
        for pattern, options in self._patterns:
            if fnmatch.fnmatchcase(channel, pattern):
                found = options
                break
        if found is not None and not (found.history or found.presence):
            found = None
        if len(self._cache) >= self.CACHE_SIZE:
            self._cache.clear()
        self._cache[channel] = found
        return found
