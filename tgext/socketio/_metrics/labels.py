"""The label values of the metrics: every one from a bounded set.

Nothing a client sends becomes a label value: reasons are mapped onto the
fixed lists here, event and error names are bounded where they are counted
(:mod:`.instruments`).
"""

#: the label value of what a bounded label does not name
OTHER = "_other"

#: distinct error names counted apart (per process); later ones are ``_other``
MAX_ERROR_NAMES = 50

#: why input was refused: the label values of ``socketio_refused_total``
REFUSAL_REASONS = (
    "bad_packet",
    "oversized",
    "slow_reader",
    "too_many_events",
    "offences",
    "namespace_not_served",
    "event_to_a_namespace_not_joined",
    "connect_refused",
    "too_many_refused_connects",
    "origin",
    "bad_request",
    "header_timeout",
    "max_connections",
    "max_connections_per_address",
    "max_sessions",
    "max_sessions_per_address",
    "other",
)

#: what a refused session's logged reason starts with or holds -> its label
#: (in order: the first that matches)
_REASON_TEXTS = (
    ("socketio.max_attachment", "oversized"),
    ("namespace connects refused", "too_many_refused_connects"),
    ("offences in a minute", "offences"),
    ("waiting to be sent", "slow_reader"),
    ("a long-polling body of", "oversized"),
    ("a message of", "oversized"),
    ("message too big", "oversized"),
    ("bytes (the limit", "oversized"),
    ("malformed", "bad_packet"),
    ("undecodable", "bad_packet"),
    ("no Socket.IO packet", "bad_packet"),
    ("unknown Engine.IO packet", "bad_packet"),
    ("cut short", "bad_packet"),
    ("frame", "bad_packet"),  # a WebSocket frame the protocol forbids
    ("not UTF-8", "bad_packet"),
)

#: what a warning about a client (the engine's ``kind``) counts as
OFFENCE_KINDS = {
    "namespace not served": "namespace_not_served",
    "malformed event": "bad_packet",
    "event to a namespace not joined": "event_to_a_namespace_not_joined",
}

#: python-engineio's disconnect reasons -> label values
DISCONNECT_REASONS = {
    "client disconnect": "client_disconnect",
    "server disconnect": "server_disconnect",
    "ping timeout": "ping_timeout",
    "transport close": "transport_close",
    "transport error": "transport_error",
}

#: the backends whose health is a gauge
BACKENDS = ("message_queue", "pubsub", "recovery_stream")


def refusal_label(reason):
    """The ``reason`` label of a refused session's logged reason text."""
    for text, label in _REASON_TEXTS:
        if text in reason:
            return label
    return "other"
