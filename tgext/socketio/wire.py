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
