"""PubSubTGNamespace: clients subscribe to channels, the server publishes.

A client emits ``subscribe`` with a channel name (and optional arguments); the
namespace's ``subscribe_<channel>`` method decides, guarded by ``@require``
and ``@validate`` like any ``on_<event>``. Every message published on a
channel reaches its subscribers as the event ``pubblication``, in every
process sharing the ``anypubsub.*`` backend (memory by default, Redis for
several processes). The channels of a process are fanned out by the app's
:class:`~tgext.socketio._channels.hub.PubSubHub`.
"""

import json
import logging

from ._channels.hub import PUBLICATION_EVENT, PublicationTooLarge, PublishError
from ._engine import client_errors
from ._engine.connection import user_of
from ._engine.runtime import runtime_of
from ._upstream import tg as _tg
from .namespace import is_refusal
from .tgnamespace import SocketIOTGNamespace

log = logging.getLogger(__name__)


class PubSubTGNamespace(SocketIOTGNamespace):
    """A namespace whose clients subscribe to channels.

    ``socket.emit("subscribe", "room", 5)`` calls ``subscribe_room(5)``
    (spaces in the name become ``_``), which returns ``False`` to reject the
    client, a string to subscribe it to that (sub)channel instead, or anything
    else to subscribe it to ``room``. The client's acknowledgement is the
    channel subscribed, or ``False``. ``unsubscribe`` with the same arguments
    undoes one subscription; with none, all of them.

    Example::

        class Chat(PubSubTGNamespace):
            @require(predicates.not_anonymous())
            def subscribe_room(self, roomid):
                return "room-%s" % roomid

            def on_say(self, roomid, text):
                self.publish("room-%s" % roomid, {"text": text})

    Channels may keep their last publications for late joiners, and tell
    who is in them, as ``channel_options`` declares (see
    :doc:`/pubsub`)::

        channel_options = {
            "room-*": {"history": 20, "history_seconds": 3600, "presence": True},
        }

    A new subscriber of such a channel gets, right after its ack,
    ``presence_state`` (``(state, channel)``), then the channel's last
    publications as ``pubblication`` with a third argument
    ``{"history": true}``, oldest first, then live traffic; every subscriber
    gets ``presence_diff`` (``({"joins": ..., "leaves": ...}, channel)``)
    as members come and go, in every process.
    """

    #: ``{"pattern": {"history": N, "history_seconds": T, "presence": bool}}``
    channel_options = None

    _tgsio_shares_hub = True

    @property
    def _tgsio_subscriptions(self):
        """``{key of subscribe's arguments: channel}`` (in the client's state)."""
        state = self._tgsio
        if state.subscriptions is None:
            state.subscriptions = {}
        return state.subscriptions

    # -- what clients call ------------------------------------------------------

    def on_subscribe(self, packet):
        args = packet["args"]
        if not args or args[0] in (None, ""):
            self.error(
                client_errors.CHANNEL_NOT_SPECIFIED,
                client_errors.CHANNEL_NOT_SPECIFIED_MESSAGE,
            )
            return False
        channel = args[0]
        method_name = _authorizer_name(channel)
        if method_name is None or not callable(getattr(self, method_name, None)):
            self.error(
                client_errors.CHANNEL_NOT_AVAILABLE,
                client_errors.CHANNEL_NOT_AVAILABLE_MESSAGE,
            )
            return False
        result = self.call_method_with_acl(method_name, packet, *args[1:])
        if is_refusal(result):
            return False  # denied or invalid: that error has been sent
        if result is False:
            self.error(
                client_errors.SUBSCRIPTION_REJECTED,
                client_errors.SUBSCRIPTION_REJECTED_MESSAGE,
            )
            return False
        if isinstance(result, str) and result:
            channel = result
        subscribed = self._tgsio_subscriptions.values()
        limit = self._tgsio.engine.max_subscriptions
        if channel not in subscribed and len(set(subscribed)) >= limit:
            self.error(
                client_errors.TOO_MANY_SUBSCRIPTIONS,
                client_errors.too_many_subscriptions_message(limit),
            )
            return False
        self._tgsio_subscribe(_subscription_key(args), channel)
        return channel

    def on_unsubscribe(self, packet):
        args = packet["args"]
        if not args:
            channels = sorted(set(self._tgsio_subscriptions.values()))
            self._tgsio_drop_subscriptions()
            return channels
        channel = self._tgsio_subscriptions.pop(_subscription_key(args), None)
        if channel is None:
            return False
        if channel not in self._tgsio_subscriptions.values():
            self._tgsio_pubsub_hub().unsubscribe(channel, self)
            recovery = self._tgsio.engine.recovery
            if recovery is not None:
                recovery.unsubscribed(self, channel)
        return channel

    # -- what the server calls ------------------------------------------------

    def publish(self, channel, message):
        """Send ``message`` (JSON-serializable) to every subscriber of ``channel``.

        :returns: ``True``, or ``False`` when the backend could not take it
            (this client then gets ``error`` ``publish_failed``) or it is
            over ``socketio.max_publication_bytes`` (``publication_too_large``).
        :raises TypeError: when ``message`` cannot be encoded as JSON.
        """
        payload = json.dumps(message)
        try:
            self._tgsio_pubsub_hub().publish(channel, payload)
        except PublicationTooLarge as error:
            self.error(
                client_errors.PUBLICATION_TOO_LARGE,
                client_errors.publication_too_large_message(error.size, error.limit),
            )
            return False
        except PublishError as error:
            self._tgsio.engine.warn_about_client(
                self._tgsio.eio_sid,
                log,
                "publish failed",
                "%s [%s]",
                error,
                self.ns_name,
            )
            self.error(
                client_errors.PUBLISH_FAILED,
                client_errors.publish_failed_message(channel),
            )
            return False
        return True

    def subscriptions(self):
        """The channels this client is subscribed to in this namespace."""
        return sorted(set(self._tgsio_subscriptions.values()))

    def channel_members(self, channel):
        """Who is in ``channel`` (declared with ``"presence": True``), in
        every process: ``{key: {"user": ..., "metas": [{"sid": ...}]}}``,
        keyed by TG user name (one entry with a meta per connection), or by
        sid for a client without a user.

        :raises ValueError: when the channel declares no presence.
        """
        return self._tgsio_pubsub_hub().members(channel)

    # -- internals --------------------------------------------------------------

    def _tgsio_pubsub_hub(self):
        state = self._tgsio
        if state.hub is None:  # found on first use
            state.hub = runtime_of(_tg.current_app_config()).hub
        return state.hub

    def _tgsio_subscribe(self, key, channel):
        hub = self._tgsio_pubsub_hub()
        previous = self._tgsio_subscriptions.get(key)
        self._tgsio_subscriptions[key] = channel
        recovery = self._tgsio.engine.recovery
        if hub.subscribe(channel, self, self._tgsio_presence_entry(channel)):
            # read before the ack (sent when this handler returns), sent after
            snapshot = hub.snapshot(channel, self)
            if snapshot is not None:
                self.spawn(hub.catch_up, channel, self, snapshot)
        elif recovery is not None:
            recovery.subscribed(self, channel)
        if previous not in (None, channel) and (
            previous not in self._tgsio_subscriptions.values()
        ):
            hub.unsubscribe(previous, self)

    def _tgsio_drop_subscriptions(self):
        channels = set(self._tgsio_subscriptions.values())
        self._tgsio_subscriptions.clear()
        hub = self._tgsio.hub
        recovery = self._tgsio.engine.recovery
        for channel in channels:
            if hub is not None:
                hub.unsubscribe(channel, self)
            if recovery is not None:
                recovery.unsubscribed(self, channel)

    def presence_meta(self, channel):
        """What this client's meta shows in ``channel``'s presence besides its
        sid (a dict of JSON values; a nickname, say): nothing unless
        overridden. Asked when the client joins the channel."""
        return {}

    def _tgsio_presence_entry(self, channel):
        """This client in a channel's presence: its sid, its TG user, and
        what :meth:`presence_meta` adds."""
        entry = dict(self.presence_meta(channel) or {})
        entry.update(sid=self._tgsio.sid, user=user_of(self.environ))
        return entry

    def _tgsio_release(self):
        try:
            self._tgsio_drop_subscriptions()
        finally:
            super()._tgsio_release()


def publish(channel, message):
    """Publish ``message`` on ``channel`` from outside a namespace.

    Call it where TG's context is active (a controller action, a handler, a
    spawned job): it uses the hub of that app, so it reaches the subscribers
    of every process sharing the ``anypubsub.*`` backend.

    :raises PublishError: when the backend could not take the message.
    """
    app_config = _tg.current_app_config()
    if app_config is None:
        raise RuntimeError(
            "publish(%r) needs the TurboGears context of an app (call it in a "
            "controller action or a namespace handler)" % channel
        )
    runtime_of(app_config).hub.publish(channel, json.dumps(message))


def channel_members(channel):
    """Who is in ``channel`` (a presence channel), from outside a namespace
    (a controller action, a spawned job of the app), as
    :meth:`PubSubTGNamespace.channel_members` returns it.

    :raises ValueError: when the channel declares no presence.
    """
    app_config = _tg.current_app_config()
    if app_config is None:
        raise RuntimeError(
            "channel_members(%r) needs the TurboGears context of an app (call "
            "it in a controller action or a namespace handler)" % channel
        )
    return runtime_of(app_config).hub.members(channel)


def _authorizer_name(channel):
    """``subscribe_<channel>`` (spaces as ``_``), or ``None`` for a bad name."""
    if not isinstance(channel, str) or not client_errors.EVENT_NAME.match(channel):
        return None
    return "subscribe_" + channel.replace(" ", "_")


def _subscription_key(args):
    """A hashable key for ``subscribe``'s arguments, equal for equal JSON."""
    return json.dumps(args, sort_keys=True, default=repr)


__all__ = (
    "PubSubTGNamespace",
    "channel_members",
    "PublicationTooLarge",
    "PublishError",
    "publish",
    "PUBLICATION_EVENT",
)
