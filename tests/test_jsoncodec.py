"""The JSON module given to python-socketio decodes and encodes as the one it
replaces (python-engineio's ``engineio.json``), and is the one in use."""

import json
import math

import engineio.json
import pytest
import socketio
from hypothesis import given, settings
from hypothesis import strategies as st

from tgext.socketio import jsoncodec

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


def test_the_engines_packets_use_it(serve):
    server = serve({})
    client = server.connect()
    try:
        assert socketio.packet.Packet.json is jsoncodec
        assert engineio.packet.Packet.json is jsoncodec
    finally:
        client.disconnect()
