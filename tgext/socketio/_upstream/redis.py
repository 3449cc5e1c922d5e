"""Closing redis-py's connections when their owner closes."""

import logging

log = logging.getLogger("tgext.socketio._redis")


def disconnect_pool(pool, what):
    """Close every connection of redis-py's ``pool`` now.

    Left to the garbage collector, a socket may be finalized before the
    connection that would have closed it (a ResourceWarning); redis-py 5.0's
    ``Redis.close()`` leaves its pool's connections open. ``what`` names the
    owner in the debug line written if a connection was already lost.
    """
    try:
        pool.disconnect()
    except Exception as error:  # a connection already lost
        log.debug("closing %s failed: %s", what, error)


def disconnect_client(client, what):
    """Close every connection of redis-py's (or Valkey's) ``client`` now,
    those to the Sentinels that found its master included (a client of a
    ``redis+sentinel://`` URL: its pool's ``sentinel_manager``)."""
    pool = client.connection_pool
    disconnect_pool(pool, what)
    sentinels = getattr(getattr(pool, "sentinel_manager", None), "sentinels", ())
    for sentinel in sentinels:
        disconnect_pool(sentinel.connection_pool, what + " (a Sentinel)")
