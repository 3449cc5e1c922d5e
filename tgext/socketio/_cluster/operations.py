"""The cluster operations a process runs when asked, by name (what a
request names: see :mod:`.bus`)."""

from . import local
from .overview import process_overview


def perform(runtime, operation, params):
    """Run ``operation`` (``fetch``, ``disconnect``, ``acks``, ``overview``)
    with the request's ``params`` here.

    :raises ValueError: for an operation this version does not know.
    """
    if operation == "fetch":
        return local.fetch(
            runtime, params.get("namespace"), params.get("to"), params.get("user")
        )
    if operation == "disconnect":
        return local.disconnect(
            runtime, params.get("namespace"), params.get("to"), params.get("user")
        )
    if operation == "acks":
        return local.emit_with_acks(
            runtime,
            params["event"],
            params.get("args") or [],
            params.get("namespace") or "/",
            params.get("to"),
            float(params.get("timeout", 5.0)),
        )
    if operation == "overview":
        return process_overview(runtime)
    raise ValueError("unknown cluster operation %r" % (operation,))
