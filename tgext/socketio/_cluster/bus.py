"""Cluster operations across the processes sharing a Redis message queue.

A request is published on ``<channel>:cluster``; every process serving the
app's namespaces listens there (one connection and one greenlet each, made
with its first engine), runs the operation on its own clients
(:mod:`.local`) and publishes its answer on the reply channel the request
names, which the asker subscribed to first. ``PUBLISH`` answers how many
listeners received the request: that many answers are awaited, until the
timeout. Requests come from the app's code (a handler, a controller, a job),
never from a client.
"""

import logging
import time
import uuid

import gevent
from gevent.event import Event
from gevent.pool import Group

from .._engine.tagged_json import dumps, loads
from .._upstream import python_socketio
from .._upstream.redis import disconnect_client
from ..exceptions import ClusterOperationError
from . import local, operations

log = logging.getLogger("tgext.socketio.cluster")

#: seconds a listener's read waits before it looks whether it must stop
READ_TIMEOUT = 1.0
#: seconds between two tries to listen again after losing Redis
RETRY_DELAY = 1.0
#: seconds a listener's connection may take to open
CONNECT_TIMEOUT = 2.0
#: seconds an asker waits for answers beyond the operation's own timeout
ANSWER_GRACE = 2.0

_askers = {}  # (url, channel) -> redis-py client, for processes not listening


def request_channel(channel):
    return "%s:cluster" % channel


class ClusterListener:
    """Answers the cluster requests for one app's runtime in this process.

    :param url: the Redis URL of ``socketio.message_queue``.
    :param channel: ``socketio.channel``.
    """

    def __init__(self, url, channel, runtime):
        self.url = url
        self.channel = channel
        self.client = python_socketio.redis_client(
            url, channel, socket_connect_timeout=CONNECT_TIMEOUT
        )
        self._runtime = runtime
        self._stopping = False
        self._stopped = Event()
        #: set once Redis confirmed the subscription: from then on every
        #: request published reaches this process (a worker waits for it
        #: before it says it is ready)
        self.listening = Event()
        self._answering = Group()
        self._reader = gevent.spawn(self._read)

    def _read(self):
        lost = False
        while not self._stopping:
            pubsub = self.client.pubsub()
            try:
                pubsub.subscribe(request_channel(self.channel))
                if lost:
                    log.warning("cluster operations: listening again")
                    lost = False
                while not self._stopping:
                    message = pubsub.get_message(timeout=READ_TIMEOUT)
                    if message is None:
                        continue
                    if message["type"] == "message":
                        self._answering.spawn(self._answer, message["data"])
                    elif message["type"] == "subscribe":
                        self.listening.set()
            except Exception as error:  # Redis away: listen again
                if not lost:
                    log.warning(
                        "cluster operations: lost Redis (%s: %s); listening "
                        "again every %.0fs",
                        type(error).__name__,
                        error,
                        RETRY_DELAY,
                    )
                lost = True
                self._stopped.wait(RETRY_DELAY)
            finally:
                try:
                    pubsub.close()
                except Exception as error:  # a connection already lost
                    log.debug("closing the cluster connection failed: %s", error)

    def _answer(self, raw):
        try:
            request = loads(raw)
            reply_to, request_id = request["reply_to"], request["id"]
        except (ValueError, TypeError, KeyError) as error:
            log.warning("cluster operations: an unreadable request (%s)", error)
            return
        answer = {"id": request_id, "server": local.server_name()}
        try:
            answer["result"] = operations.perform(
                self._runtime, request.get("op"), request.get("params") or {}
            )
        except Exception as error:  # the app's hooks (recv_disconnect) run here
            log.exception("cluster operation %r failed", request.get("op"))
            answer["error"] = "%s: %s" % (type(error).__name__, error)
        try:
            self.client.publish(reply_to, dumps(answer))
        except Exception as error:  # Redis away: the asker times out
            log.warning("cluster operations: could not answer (%s)", error)

    def close(self):
        """Stop listening (between two reads: killed while redis-py
        connects, a socket may be left unclosed), then close the connections."""
        self._stopping = True
        self._stopped.set()
        self._reader.join(max(READ_TIMEOUT, CONNECT_TIMEOUT) + 1)
        self._reader.kill(block=True, timeout=1)
        self._answering.kill(block=True, timeout=1)
        disconnect_client(self.client, "the cluster operations' connections")


def ask(url, channel, operation, params, timeout, client=None):
    """Ask every process sharing the queue to run ``operation``.

    :param timeout: seconds the operation itself may take in each process
        (the acks' wait); answers are awaited a little longer.
    :param client: a redis-py client to use (a listener's), else one kept
        for ``(url, channel)``.
    :returns: ``(answers, asked)``: the results of the processes that
        answered in time, and how many processes received the request.
    :raises ClusterOperationError: a process failed to run it.
    """
    if client is None:
        client = _askers.get((url, channel))
        if client is None:
            client = _askers[(url, channel)] = python_socketio.redis_client(
                url, channel, socket_connect_timeout=5
            )
    request_id = uuid.uuid4().hex
    reply_to = "%s:cluster:reply:%s" % (channel, request_id)
    pubsub = client.pubsub()
    try:
        pubsub.subscribe(reply_to)
        _wait_subscribed(pubsub, timeout)
        asked = client.publish(
            request_channel(channel),
            dumps(
                {
                    "id": request_id,
                    "op": operation,
                    "params": params,
                    "reply_to": reply_to,
                }
            ),
        )
        answers = []
        deadline = time.monotonic() + timeout + ANSWER_GRACE
        while len(answers) < asked:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            message = pubsub.get_message(timeout=left)
            if message is None or message["type"] != "message":
                continue
            answer = loads(message["data"])
            if answer.get("id") == request_id:
                answers.append(answer)
    finally:
        try:
            pubsub.close()
        except Exception as error:  # a connection already lost
            log.debug("closing the cluster reply connection failed: %s", error)
    failed = [answer for answer in answers if "error" in answer]
    if failed:
        raise ClusterOperationError(
            "%s failed on %s: %s" % (operation, failed[0]["server"], failed[0]["error"])
        )
    if len(answers) < asked:
        log.warning(
            "cluster %s: %d of %d processes answered within %.1fs",
            operation,
            len(answers),
            asked,
            timeout + ANSWER_GRACE,
        )
    return [answer["result"] for answer in answers], asked


def _wait_subscribed(pubsub, timeout):
    deadline = time.monotonic() + max(timeout, 1.0)
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=deadline - time.monotonic())
        if message is not None and message["type"] == "subscribe":
            return
    raise TimeoutError("Redis did not confirm the subscription to the answers")
