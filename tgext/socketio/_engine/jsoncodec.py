"""The JSON module the engines give python-socketio (its ``json=`` option).

python-engineio's own (``engineio.json``) bounds integers to 100 digits by
calling ``json.loads(text, parse_int=...)``, and python-socketio encodes with
``json.dumps(data, separators=(",", ":"))``: given any option, the standard
module builds a new decoder (with its scanner) or encoder for every call. Per
event: 3.7 us to decode ``["ping",{"type":"ping"}]``, 3.0 us to encode its
answer. Here each is built once, with the same options, so every packet
decodes to the same values and encodes to the same bytes (0.5 and 0.7 us).

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


def _prebuilt_compact_encoder():
    """``dumps_compact``: the C encoder ``JSONEncoder.iterencode`` would build,
    built once.

    ``JSONEncoder.encode`` builds a new one (and a closure) per call: 0.7 us
    of the 1.4 us an event's answer took to encode (timeit). Its cycle check
    keeps the containers being encoded in ``markers``, where an encoding that
    fails midway leaves them: emptied then. ``None`` without the C
    accelerator.
    """
    try:
        from _json import make_encoder
    except ImportError:  # another interpreter: the pure-Python encoder
        return None
    markers = {}
    encode_chunks = make_encoder(
        markers,
        _compact_encoder.default,
        json.encoder.encode_basestring_ascii,
        None,  # indent
        _COMPACT[1],
        _COMPACT[0],
        False,  # sort_keys
        False,  # skipkeys
        True,  # allow_nan
    )

    def dumps_compact(obj):
        try:
            return "".join(encode_chunks(obj, 0))
        except BaseException:
            markers.clear()
            raise

    return dumps_compact


#: ``dumps(obj, separators=(",", ":"))``, the form of every Socket.IO packet
dumps_compact = _prebuilt_compact_encoder() or _compact_encoder.encode


def dumps(obj, **options):
    """``json.dumps``; the compact form python-socketio asks for, from a
    prebuilt encoder."""
    if len(options) == 1 and options.get("separators") == _COMPACT:
        return dumps_compact(obj)
    return json.dumps(obj, **options)
