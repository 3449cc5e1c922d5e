"""Import-time checks for the environment the package runs in."""

from importlib import metadata


def refuse_gevent_socketio():
    """Fail loudly when the dead ``gevent-socketio`` shadows python-socketio.

    Both distributions install a top-level ``socketio`` package; with the old
    one installed, every import below would load the wrong library.
    """
    try:
        metadata.distribution("gevent-socketio")
    except metadata.PackageNotFoundError:
        return
    raise ImportError(
        "gevent-socketio is installed, and it shadows python-socketio (both "
        "provide the 'socketio' package). tgext.socketio needs python-socketio: "
        "run 'pip uninstall gevent-socketio' and then "
        "'pip install --force-reinstall python-socketio'."
    )
