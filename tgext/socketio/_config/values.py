"""Converters of ini values shared by the option tables (``socketio.*`` in
:mod:`.config`, ``[server:main]`` in :mod:`.admission`).

No TurboGears here: the server module reads this before gevent has patched
the standard library.
"""


def seconds(value):
    """A positive number of seconds."""
    number = float(value)
    if number <= 0:
        raise ValueError(value)
    return number


def positive_int(value):
    """A whole number of at least 1 (not a float, even 2.0)."""
    if isinstance(value, float) or int(value) <= 0:
        raise ValueError(value)
    return int(value)
