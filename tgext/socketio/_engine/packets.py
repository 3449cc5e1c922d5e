"""Socket.IO EVENT and ACK packets without attachments, decoded and encoded
in one step, exactly as python-socketio's packet would (it takes the rest)."""

import re

from socketio import packet as sio_packet

from . import jsoncodec

#: the start of a Socket.IO EVENT packet without attachments, up to its
#: data: namespace (no query string) and ack id; whatever else (an id of
#: over 100 digits, say) is left to python-socketio's packet
_JSON_EVENT = re.compile(r"2(?:(/[^,?]*),)?([0-9]{1,100})?\[")

#: Socket.IO packet types as the wire writes them
_PACKET_TYPES = {sio_packet.EVENT: "2", sio_packet.ACK: "3"}


def decode_json_event(text):
    """``(namespace, id, data)`` of a Socket.IO EVENT packet without
    attachments, as python-socketio's packet decodes them, or ``None`` for
    any other packet (python-socketio's packet decodes those)."""
    event = _JSON_EVENT.match(text) if type(text) is str else None
    if event is None:
        return None
    namespace, id = event.groups()
    data = jsoncodec.loads(text[event.end() - 1 :])
    return namespace, None if id is None else int(id), data


def encode_json_packet(packet_type, namespace, data, id=None):
    """The Socket.IO EVENT or ACK packet of ``data`` (a list) as python-socketio
    encodes it, or ``None`` if it is no JSON packet (bytes in ``data``, or
    what JSON cannot encode: python-socketio's packet deals with those)."""
    try:
        text = jsoncodec.dumps_compact(data)
    except TypeError:
        return None
    head = _PACKET_TYPES[packet_type]
    if namespace is not None and namespace != "/":
        head += namespace + ","
    if id is not None:
        head += str(id)
    return head + text
