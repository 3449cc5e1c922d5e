"""The JSON module given to python-socketio decodes and encodes as the one it
replaces (python-engineio's ``engineio.json``), and is the one in use; the
packets the engine encodes itself are the bytes python-socketio writes."""

import json
import math

import engineio.json
import pytest
import socketio
from hypothesis import given, settings
from hypothesis import strategies as st

from tgext.socketio._engine import jsoncodec
from tgext.socketio._engine.engine import decode_json_event, encode_json_packet

COMPACT = {"separators": (",", ":")}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


def outcome(function, *args, **kwargs):
    """What a call returns, or the type and message of what it raises."""
    try:
        return "value", function(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - compared, not handled
        return "error", type(error), str(error)


def same(a, b):
    # NaN is unequal to itself: compare the encodings of decoded values
    return json.dumps(a) == json.dumps(b)


@settings(derandomize=True, max_examples=500)
@given(value=json_values)
def test_encodes_to_the_same_bytes(value):
    assert jsoncodec.dumps(value, **COMPACT) == engineio.json.dumps(value, **COMPACT)
    assert jsoncodec.dumps(value) == engineio.json.dumps(value)


@settings(derandomize=True, max_examples=500)
@given(value=json_values, spaces=st.sampled_from(["", " ", "\n\t "]))
def test_decodes_what_it_encodes_to_the_same_values(value, spaces):
    text = spaces + engineio.json.dumps(value, **COMPACT) + spaces
    ours, theirs = outcome(jsoncodec.loads, text), outcome(engineio.json.loads, text)
    assert ours[0] == theirs[0] == "value"
    assert same(ours[1], theirs[1])


@settings(derandomize=True, max_examples=500)
@given(text=st.text(alphabet='[]{}",:0123456789.eE+- \ntrufalsn\\x', max_size=40))
def test_refuses_what_it_refuses_with_the_same_error(text):
    ours, theirs = outcome(jsoncodec.loads, text), outcome(engineio.json.loads, text)
    if ours[0] == "value":
        assert theirs[0] == "value" and same(ours[1], theirs[1])
    else:
        assert ours == theirs


@pytest.mark.parametrize(
    "text",
    [
        "1" * 100,
        "1" * 101,
        "[%s]" % ("9" * 101),
        '["ping",{"type":"ping"}]',
        "[1] x",
        "",
        " ",
        "[" * 100_000,
        "NaN",
        '"\\ud800"',
        b'["bytes"]',
        '\ufeff["bom"]',
    ],
)
def test_edge_cases_behave_alike(text):
    ours, theirs = outcome(jsoncodec.loads, text), outcome(engineio.json.loads, text)
    assert ours[0] == theirs[0]
    if ours[0] == "value":
        assert same(ours[1], theirs[1])
    else:
        assert ours == theirs


def test_float_edge_values_encode_alike():
    for value in (math.nan, math.inf, -math.inf, 1e308, 5e-324, -0.0):
        assert jsoncodec.dumps([value], **COMPACT) == engineio.json.dumps(
            [value], **COMPACT
        )


def test_an_encoding_that_failed_leaves_nothing_for_the_next():
    """The prebuilt encoder's cycle check remembers the containers it is in:
    a failure midway must not make them look circular to the next call."""
    box = {"a": [1, {1, 2}]}  # a set: not JSON
    assert outcome(jsoncodec.dumps, [box], **COMPACT) == outcome(
        engineio.json.dumps, [box], **COMPACT
    )
    assert outcome(jsoncodec.dumps, [box], **COMPACT)[0] == "error"
    box["a"].pop()
    assert jsoncodec.dumps([box, box], **COMPACT) == '[{"a":[1]},{"a":[1]}]'
    circular = [box]
    circular.append(circular)
    assert outcome(jsoncodec.dumps, circular, **COMPACT) == (
        "error",
        ValueError,
        "Circular reference detected",
    )
    assert jsoncodec.dumps(box, **COMPACT) == '{"a":[1]}'


def test_the_engines_packets_use_it(serve):
    server = serve({})
    client = server.connect()
    try:
        assert socketio.packet.Packet.json is jsoncodec
        assert engineio.packet.Packet.json is jsoncodec
    finally:
        client.disconnect()


@settings(derandomize=True, max_examples=500)
@given(
    packet_type=st.sampled_from([socketio.packet.EVENT, socketio.packet.ACK]),
    namespace=st.sampled_from([None, "/", "/chat", "/a,b"]),
    data=st.lists(json_values | st.binary(max_size=3), max_size=4),
    id=st.none() | st.integers(min_value=0, max_value=10**12),
)
def test_packets_encode_as_python_socketio_encodes_them(
    packet_type, namespace, data, id
):
    ours = encode_json_packet(packet_type, namespace, data, id)
    theirs = socketio.packet.Packet(
        packet_type, data=data, namespace=namespace, id=id
    ).encode()
    if ours is None:  # bytes in it: python-socketio's binary packet
        assert isinstance(theirs, list)
    else:
        assert ours == theirs


@settings(derandomize=True, max_examples=1000)
@given(
    namespace=st.sampled_from(["", "/", "/chat,", "/chat", "/a?b=1,", "/é,", "/,"]),
    id=st.sampled_from(["", "0", "12", "1" * 100, "1" * 101, "١", "1-"]),
    data=st.sampled_from(
        ['["ev"]', '["ev",1,{"a":[2]}]', "[", "[]x", '{"a":1}', "", "-[1]"]
    ),
    attachments=st.sampled_from(["", "1-"]),
)
def test_events_decode_as_python_socketio_decodes_them(
    namespace, id, data, attachments
):
    text = "2" + attachments + namespace + id + data
    ours = outcome(decode_json_event, text)
    if ours == ("value", None):
        return  # not taken: python-socketio's packet decodes it
    packet = socketio.packet.Packet()
    theirs = outcome(packet.decode, text)
    assert ours[0] == theirs[0]
    if ours[0] == "value":
        assert theirs[1] == 0  # no attachments
        assert ours[1] == (packet.namespace, packet.id, packet.data)
    else:
        assert ours[1:] == theirs[1:]
