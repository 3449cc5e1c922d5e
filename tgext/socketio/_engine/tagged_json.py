"""JSON that keeps bytes and sets: what crosses processes through Redis
(connection state recovery's entries and records, cluster operations'
requests and answers). Events and acks may carry bytes; a session may hold
sets (RoomsMixin's ``rooms``)."""

import base64
import json

#: what marks bytes and sets in JSON (a one-key object): events may carry
#: bytes, a session sets (RoomsMixin's ``rooms``)
_BYTES = "\x00bytes"
_SET = "\x00set"


def dumps(value):
    """JSON of ``value``; bytes and sets tagged.

    :raises TypeError: for what JSON cannot hold otherwise.
    """
    try:
        return json.dumps(value, separators=(",", ":"))
    except TypeError:
        return json.dumps(_tagged(value), separators=(",", ":"))


def loads(raw):
    return json.loads(raw, object_hook=_untagged)


def _tagged(value):
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {_BYTES: base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (set, frozenset)):
        return {_SET: [_tagged(item) for item in value]}
    if isinstance(value, (list, tuple)):
        return [_tagged(item) for item in value]
    if isinstance(value, dict):
        return {key: _tagged(item) for key, item in value.items()}
    return value


def _untagged(obj):
    if len(obj) == 1:
        if _BYTES in obj:
            return base64.b64decode(obj[_BYTES])
        if _SET in obj:
            return set(obj[_SET])
    return obj
