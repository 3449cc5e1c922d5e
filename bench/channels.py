"""Channels at scale on Redis: ``.venv/bin/python bench/channels.py [REV]``.

What does a process pay for listening to many PubSub channels? One
``bench/fanout_server.py`` (Redis backend, a redis-server of its own on a
free port) with 500 subscribers of ``news`` (``bench/fanout.js``), measured
in three states:

* ``quiet``: those 500 only;
* ``10,000 channels``: plus 100 clients subscribed to 100 channels each
  (``room-<n>``, in acked batches: ``socketio.max_subscriptions`` is 100);
* ``dropped``: once those 100 clients left at once.

For each state: the time for one publication on ``news`` to reach the 500
(p50 of ``--fanouts``), Redis's clients (``CLIENT LIST``), the server's
greenlets and RSS, and the worst lateness of a 10 ms timer in the server
(how long the drop stalled the loop); RSS again 60 s after the drop.

With ``REV`` (a git revision, such as the commit before this work), the
same server on that revision's package is measured too, in the quiet state
only, alongside: the fan-out with 10,000 channels here against the quiet
fan-out there is the ratio the channels work promised (at most 1.2).
"""

import argparse
import json
import statistics
import sys
import time

import websocket
from fanout import FanoutServer, LoadGenerator, RedisServer
from fanout import prepare as prepare_fanout
from run import log, wait_for_quiet_core
from versus import Worktree

CLIENTS = 500
CHANNEL_CLIENTS = 100
CHANNELS_PER_CLIENT = 100
BATCH = 50
SETTLE_SECONDS = 60


class RawClient:
    """A raw WebSocket client of /fanout (subscribe batches, stats)."""

    def __init__(self, server):
        self.ws = websocket.create_connection(server.url, timeout=60)
        assert self.ws.recv().startswith("0{")
        self.ws.send("40/fanout,")
        assert self.ws.recv().startswith("40/fanout,")
        self.next_id = 0

    def call(self, event, *args):
        self.next_id += 1
        self.ws.send("42/fanout,%d%s" % (self.next_id, json.dumps([event, *args])))
        prefix = "43/fanout,%d" % self.next_id
        while True:
            frame = self.ws.recv()
            if frame == "2":
                self.ws.send("3")
            elif frame.startswith(prefix):
                return json.loads(frame[len(prefix):])

    def subscribe_rooms(self, roomids):
        for start in range(0, len(roomids), BATCH):
            batch = roomids[start : start + BATCH]
            for roomid in batch:
                self.next_id += 1
                self.ws.send('42/fanout,%d["subscribe","room",%d]' % (self.next_id, roomid))
            acks = 0
            while acks < len(batch):
                frame = self.ws.recv()
                if frame == "2":
                    self.ws.send("3")
                elif frame.startswith("43/fanout,"):
                    acks += 1

    def close(self):
        self.ws.close()


def redis_clients(redis):
    """Clients of the redis-server, but the one asking."""
    import redis as redis_py

    admin = redis_py.Redis.from_url(redis.url)
    try:
        return len(admin.client_list()) - 1
    finally:
        admin.close()


def fanouts(load, server, count, seq):
    times = []
    for _ in range(count):
        times.append(load.fanout(server, "publish", seq, None)["last_ms"])
        seq += 1
        time.sleep(0.02)
    return statistics.median(times), seq


def state(name, load, server, probe, redis, options, seq):
    stats = probe.call("stats")[0]
    p50, seq = fanouts(load, server, options.fanouts, seq)
    row = {
        "state": name,
        "fanout_p50_ms": p50,
        "redis_clients": redis_clients(redis),
        "greenlets": stats["greenlets"],
        "rss_kib": stats["rss_kib"],
        "worst_lateness_ms": 1e3 * stats["worst_lateness_s"],
    }
    log("%s: %s" % (name, row))
    return row, seq


def measure(options, redis, env=None, full=True):
    server = FanoutServer("redis", redis.url, options.server_cpu, env=env)
    server.backend = "memory"  # LoadGenerator.fanout: no redis CPU asked
    rows = []
    try:
        load = LoadGenerator([server], CLIENTS, options.load_cpu)
        probe = RawClient(server)
        try:
            wait_for_quiet_core(options.server_cpu, options.patience)
            seq = 0
            for _ in range(5):  # warm-up
                load.fanout(server, "publish", seq, None)
                seq += 1
            row, seq = state("quiet", load, server, probe, redis, options, seq)
            rows.append(row)
            if not full:
                return rows
            subscribers = [RawClient(server) for _ in range(CHANNEL_CLIENTS)]
            for index, client in enumerate(subscribers):
                client.subscribe_rooms(
                    list(range(index * CHANNELS_PER_CLIENT, (index + 1) * CHANNELS_PER_CLIENT))
                )
            row, seq = state("10,000 channels", load, server, probe, redis, options, seq)
            rows.append(row)
            for client in subscribers:
                client.close()
            time.sleep(2)
            row, seq = state("dropped", load, server, probe, redis, options, seq)
            rows.append(row)
            probe.close()  # it would not answer pings while it waits
            time.sleep(SETTLE_SECONDS)
            probe = RawClient(server)
            stats = probe.call("stats")[0]
            rows.append({"state": "60 s after the drop", "rss_kib": stats["rss_kib"],
                         "greenlets": stats["greenlets"], "redis_clients": redis_clients(redis)})
            log("60 s after the drop: %s" % rows[-1])
        finally:
            probe.close()
            load.stop()
    finally:
        server.stop()
    return rows


def report(rows, base_rows, rev):
    lines = ["%-22s %12s %8s %10s %9s %12s" % (
        "state", "fan-out p50", "Redis", "greenlets", "RSS MiB", "loop late ms")]
    for row in rows:
        lines.append("%-22s %12s %8s %10s %9.1f %12s" % (
            row["state"],
            "%.2f ms" % row["fanout_p50_ms"] if "fanout_p50_ms" in row else "",
            row["redis_clients"],
            row["greenlets"],
            row["rss_kib"] / 1024,
            "%.1f" % row["worst_lateness_ms"] if "worst_lateness_ms" in row else "",
        ))
    if base_rows:
        base = base_rows[0]
        lines.append("%-22s %12s %8s %10s %9.1f" % (
            "quiet, at %s" % rev, "%.2f ms" % base["fanout_p50_ms"], base["redis_clients"],
            base["greenlets"], base["rss_kib"] / 1024))
        lines.append("fan-out with 10,000 channels here / quiet at %s: %.2f (target <= 1.20)"
                     % (rev, rows[1]["fanout_p50_ms"] / base["fanout_p50_ms"]))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", nargs="?", help="a git revision to compare with")
    parser.add_argument("--fanouts", type=int, default=80)
    parser.add_argument("--patience", type=float, default=5.0)
    parser.add_argument("--no-pin", action="store_true")
    options = parser.parse_args(argv)
    fanout_options = argparse.Namespace(no_pin=options.no_pin, clients=2000)
    prepare_fanout(fanout_options)
    options.server_cpu, options.load_cpu = fanout_options.server_cpu, fanout_options.load_cpu
    redis = RedisServer(options.load_cpu)
    worktree = Worktree(options.rev) if options.rev else None
    try:
        base_rows = measure(options, redis, env=worktree.env, full=False) if worktree else []
        rows = measure(options, redis)
    finally:
        redis.stop()
        if worktree is not None:
            worktree.remove()
    print(report(rows, base_rows, worktree.commit if worktree else None))


if __name__ == "__main__":
    sys.exit(main())
