"""The error names and messages clients receive, and the event-name rule.

Every name and message here is spelled as in tgext.socketio 0.0.x (itself
following gevent-socketio): the pages of existing applications compare them
letter for letter, so do not "fix" the grammar.
"""

import re

METHOD_ACCESS_DENIED = "method_access_denied"
NO_SUCH_METHOD = "no_such_method"
INVALID_METHOD_ARGS = "invalid_method_args"
UNALLOWED_EVENT_NAME = "unallowed_event_name"
INTERNAL_SERVER_ERROR = "internal_server_error"

UNALLOWED_EVENT_NAME_MESSAGE = "name must only contains alpha numerical characters"

# PubSubTGNamespace (publish_failed is new: 0.0.x had no way to fail a publish)
CHANNEL_NOT_SPECIFIED = "channel_not_specified"
CHANNEL_NOT_SPECIFIED_MESSAGE = "You must specify the channel you want to subscribe"
CHANNEL_NOT_AVAILABLE = "channel_not_available"
CHANNEL_NOT_AVAILABLE_MESSAGE = "Trying to subscribe to a channel not available"
SUBSCRIPTION_REJECTED = "subscription_rejected"
SUBSCRIPTION_REJECTED_MESSAGE = "Your subscription has been rejected by server"
PUBLISH_FAILED = "publish_failed"

#: CONNECT_ERROR's message for a namespace the server does not serve (Node's)
INVALID_NAMESPACE_MESSAGE = "Invalid namespace"

# limits (new: 0.0.x had none)
TOO_MANY_EVENTS = "too_many_events"
TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
TOO_MANY_ROOMS = "too_many_rooms"
PUBLICATION_TOO_LARGE = "publication_too_large"

#: an event name starts with a letter and holds letters, digits, ``_`` and spaces
EVENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_ ]*\Z")


def access_denied_message(method_name):
    return 'You do not have access to method "%s"' % method_name


def no_such_method_message(method_name):
    return 'The method "%s" was not found' % method_name


def internal_error_message(method_name):
    return 'The server failed while running "%s"' % method_name


def method_name_for_event(event_name):
    """``on_`` + the event name with spaces as ``_``: the only mapping used."""
    return "on_" + event_name.replace(" ", "_")


def publish_failed_message(channel):
    return (
        'Could not publish on channel "%s": the pub/sub backend is unavailable'
        % channel
    )


def too_many_subscriptions_message(limit):
    return (
        "You may subscribe to %d channels at most in this namespace "
        "(socketio.max_subscriptions)" % limit
    )


def too_many_rooms_message(limit):
    return (
        "You may be in %d rooms at most in this namespace (socketio.max_rooms)" % limit
    )


def publication_too_large_message(size, limit):
    return (
        "A publication of %d bytes is over the limit of %d "
        "(socketio.max_publication_bytes)" % (size, limit)
    )


def too_many_events_message(limit):
    return (
        "More than %d events are waiting for the server: you are disconnected "
        "from this namespace" % limit
    )
