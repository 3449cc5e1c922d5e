"""Fan-out: broadcast against publish: ``.venv/bin/python bench/fanout.py``.

How long does one message take to reach 500 WebSocket clients of one server
process, sent three ways?

* ``BroadcastMixin.broadcast_event("news", msg)`` to every client of the
  namespace (python-socketio's own fan-out);
* ``PubSubTGNamespace.publish("news", msg)`` to the subscribers of the channel
  ``news`` on the ``anypubsub`` memory backend (the default);
* the same publish on the Redis backend, through a ``redis-server`` this
  script starts on a free loopback port and stops at the end.

The backend is per app, so each round starts two fresh servers
(``bench/fanout_server.py``): one on the memory backend, one on Redis. Each
has 500 clients (``bench/fanout.js``) joined to ``/fanout`` and subscribed to
``news``, and serves both broadcast and publish, so each publish is compared
with a broadcast by the same process to the same clients. The fan-outs of
the four kinds are interleaved, one at a time; each is timed in the load
generator from the moment one client sends the trigger until the last of the
500 has received the message. The table shows the medians over the rounds of
each round's p50 and p99; every number goes to ``bench/results/fanout.json``.
"""

import argparse
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from run import (
    BENCH_DIR,
    BenchError,
    environment,
    install_node_packages,
    log,
    pin_cores,
    pinned_to,
    raise_open_files,
    ratio,
    read_message,
    save_results,
    schedstat,
    wait_for_quiet_core,
)

RESULTS_FILE = os.path.join(BENCH_DIR, "results", "fanout.json")
BACKENDS = ("memory", "redis")
#: (kind, the server's backend, what the trigger asks for), in report order
KINDS = (
    ("broadcast/memory", "memory", "broadcast"),
    ("publish/memory", "memory", "publish"),
    ("broadcast/redis", "redis", "broadcast"),
    ("publish/redis", "redis", "publish"),
)
LABELS = {
    "broadcast/memory": "broadcast_event (memory server)",
    "publish/memory": "publish, memory backend",
    "broadcast/redis": "broadcast_event (Redis server)",
    "publish/redis": "publish, Redis backend",
}
#: publish/broadcast p50, per backend: (publish kind, broadcast kind)
RATIOS = {
    "memory": ("publish/memory", "broadcast/memory"),
    "redis": ("publish/redis", "broadcast/redis"),
}
RATIO_TARGET = 1.20
WARMUP_FANOUTS = 5  # per kind and round, not timed
PAUSE_SECONDS = 0.02  # between fan-outs: the previous one's writes drain
SHARED_REDIS_PORT = 6379  # never ours: someone else's data may live there


# -- processes ----------------------------------------------------------------


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A ``redis-server`` of our own on a free loopback port, no persistence."""

    def __init__(self, cpu):
        executable = shutil.which("redis-server")
        if executable is None:
            raise BenchError("redis-server is missing: run `make services` (README)")
        self.port = free_port()
        if self.port == SHARED_REDIS_PORT:
            raise BenchError("got port %d, the shared Redis's" % self.port)
        self.url = "redis://127.0.0.1:%d/0" % self.port
        self.workdir = tempfile.mkdtemp(prefix="tgsio-fanout-redis-")
        command = [executable]
        for name, value in (
            ("port", self.port),
            ("bind", "127.0.0.1"),
            ("save", ""),  # no snapshots
            ("appendonly", "no"),
            ("dir", self.workdir),
        ):
            command += ["--" + name, str(value)]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=pinned_to(cpu),
        )
        self._wait_until_up(10)

    def _wait_until_up(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise BenchError("redis-server did not start on port %d" % self.port)
            time.sleep(0.05)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


class FanoutServer:
    """A ``bench/fanout_server.py`` subprocess on one backend."""

    def __init__(self, backend, redis_url, cpu, env=None, extra=()):
        command = [sys.executable, os.path.join(BENCH_DIR, "fanout_server.py"), *extra]
        if backend == "redis":
            command += ["--redis", redis_url]
        self.backend = backend
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            bufsize=0,
            preexec_fn=pinned_to(cpu),
            env=env,
        )
        self.port = read_message(self.process, 60, "the %s server" % backend)
        self.url = "ws://127.0.0.1:%d/socketio/?EIO=4&transport=websocket" % self.port

    def stop(self):
        self.process.terminate()
        self.process.wait(10)


class LoadGenerator:
    """``bench/fanout.js``: ``clients`` subscribers on each server (each one
    a deployment of its own)."""

    def __init__(self, servers, clients, cpu):
        self.servers = list(servers)
        self.process = subprocess.Popen(
            ["node", os.path.join(BENCH_DIR, "fanout.js"), str(clients)]
            + [server.url for server in self.servers],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            preexec_fn=pinned_to(cpu),
        )
        read_message(self.process, 120, "the load generator")  # ready

    def fanout(self, server, mode, seq, redis):
        """One fan-out, timed by the load generator; CPU used meanwhile."""
        index = self.servers.index(server)
        pids = {"server": server.process.pid, "load": self.process.pid}
        if server.backend == "redis":
            pids["redis"] = redis.process.pid
        before = {name: schedstat(pid)[0] for name, pid in pids.items()}
        command = {"deployment": index, "mode": mode, "seq": seq}
        self.process.stdin.write((json.dumps(command) + "\n").encode())
        result = read_message(self.process, 30, "the load generator")
        after = {name: schedstat(pid)[0] for name, pid in pids.items()}
        if result.get("seq") != seq:
            raise BenchError("asked for fan-out %d, got %r" % (seq, result))
        del result["event"], result["seq"], result["last_ms_by_where"]
        for name in pids:
            result["%s_cpu_ms" % name] = 1e3 * (after[name] - before[name])
        return result

    def stop(self):
        self.process.stdin.close()
        try:
            self.process.wait(30)
        finally:
            self.process.kill()
            self.process.wait()


# -- measurements ---------------------------------------------------------------


def percentile(values, fraction):
    """As loadgen.js computes it: the smallest value with ``fraction`` at or below."""
    ordered = sorted(values)
    index = math.ceil(round(fraction * len(ordered), 9)) - 1
    return ordered[min(len(ordered) - 1, max(0, index))]


def run_round(number, redis, options):
    """Fresh servers; the kinds' fan-outs interleaved, one at a time."""
    servers = {
        backend: FanoutServer(backend, redis.url, options.server_cpu)
        for backend in BACKENDS
    }
    samples = {kind: [] for kind, _, _ in KINDS}
    try:
        log("round %d: %d clients on each server" % (number + 1, options.clients))
        load = LoadGenerator(servers.values(), options.clients, options.load_cpu)
        try:
            seq = 0
            wait_for_quiet_core(options.server_cpu, options.patience)
            log("round %d: %d fan-outs of each kind" % (number + 1, options.fanouts))
            for repetition in range(WARMUP_FANOUTS + options.fanouts):
                # rotate the order, so no kind always follows the same one
                shift = repetition % len(KINDS)
                for kind, backend, mode in KINDS[shift:] + KINDS[:shift]:
                    result = load.fanout(servers[backend], mode, seq, redis)
                    seq += 1
                    if repetition >= WARMUP_FANOUTS:
                        samples[kind].append(result)
                    time.sleep(PAUSE_SECONDS)
        finally:
            load.stop()
    finally:
        for server in servers.values():
            server.stop()
    return samples


def round_summary(samples):
    """Per kind: p50/p99 of the time to the last client, and medians of the rest."""
    summary = {}
    for kind, results in samples.items():
        last = [result["last_ms"] for result in results]
        summary[kind] = {
            "p50_ms": percentile(last, 0.50),
            "p99_ms": percentile(last, 0.99),
            "first_p50_ms": statistics.median(r["first_ms"] for r in results),
            "ack_p50_ms": statistics.median(r["ack_ms"] for r in results),
            "server_cpu_ms": statistics.median(r["server_cpu_ms"] for r in results),
            "load_cpu_ms": statistics.median(r["load_cpu_ms"] for r in results),
        }
        if "redis_cpu_ms" in results[0]:
            summary[kind]["redis_cpu_ms"] = statistics.median(
                r["redis_cpu_ms"] for r in results
            )
    return summary


def summarize(rounds):
    """Medians over the rounds of each round's figures."""
    summary = {}
    for kind, _, _ in KINDS:
        keys = rounds[0][kind].keys()
        summary[kind] = {
            key: statistics.median(r[kind][key] for r in rounds) for key in keys
        }
    summary["ratios"] = {
        backend: ratio(summary[pub]["p50_ms"], summary[bcast]["p50_ms"])
        for backend, (pub, bcast) in RATIOS.items()
    }
    return summary


# -- report -----------------------------------------------------------------------


def report(summary, options):
    lines = [
        "fan-out to %d WebSocket clients of one server: medians of %d round(s) "
        "of %d fan-outs per kind" % (options.clients, options.rounds, options.fanouts),
        "server on CPU %s, load generator and redis-server on CPU %s"
        % (options.server_cpu, options.load_cpu),
        "",
        "ms from the trigger to the LAST client (lower is better); first client,",
        "trigger's ack, and CPU ms per fan-out of the server / load gen. / redis",
        "%-32s %7s %7s %7s %7s %7s %7s %7s"
        % ("", "p50", "p99", "first", "ack", "server", "load", "redis"),
    ]
    for kind, _, _ in KINDS:
        row = summary[kind]
        lines.append(
            "%-32s %7.1f %7.1f %7.1f %7.1f %7.1f %7.1f %7s"
            % (
                LABELS[kind],
                row["p50_ms"],
                row["p99_ms"],
                row["first_p50_ms"],
                row["ack_p50_ms"],
                row["server_cpu_ms"],
                row["load_cpu_ms"],
                "%.2f" % row["redis_cpu_ms"] if "redis_cpu_ms" in row else "",
            )
        )
    lines += ["", "publish/broadcast, p50 to the last client, same server and clients"]
    for backend, (pub, bcast) in RATIOS.items():
        value = summary["ratios"][backend]
        lines.append(
            "  %-8s %5.2f  (p99 %.2f, server CPU %.2f)  target <= %.2f  %s"
            % (
                backend,
                value,
                ratio(summary[pub]["p99_ms"], summary[bcast]["p99_ms"]),
                ratio(summary[pub]["server_cpu_ms"], summary[bcast]["server_cpu_ms"]),
                RATIO_TARGET,
                "ok" if value <= RATIO_TARGET else "MISSED",
            )
        )
    return "\n".join(lines)


# -- set-up -----------------------------------------------------------------------


def prepare(options):
    """Pick the cores, raise the open-files limit, install ``ws`` if missing."""
    pin_cores(options)
    raise_open_files(len(BACKENDS) * options.clients + 1000)
    install_node_packages()


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--clients",
        type=int,
        default=500,
        help="WebSocket clients per server (default 500)",
    )
    parser.add_argument(
        "--fanouts",
        type=int,
        default=80,
        help="timed fan-outs of each kind per round (default 80)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 round of 20 fan-outs"
    )
    parser.add_argument(
        "--patience",
        type=float,
        default=5.0,
        help="seconds to wait, before each round, for other processes to "
        "leave the servers' core (default 5)",
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin processes to cores"
    )
    parser.add_argument(
        "--output", default=RESULTS_FILE, help="where to write the JSON"
    )
    options = parser.parse_args(argv)
    if options.quick:
        vars(options).update(rounds=1, fanouts=20, patience=2.0)
    return options


def main(argv=None):
    options = parse_args(argv)
    prepare(options)
    started, ran = time.monotonic(), environment()
    redis = RedisServer(options.load_cpu)
    try:
        rounds = [run_round(number, redis, options) for number in range(options.rounds)]
    finally:
        redis.stop()
    ran["duration_seconds"] = round(time.monotonic() - started, 1)
    per_round = [round_summary(samples) for samples in rounds]
    summary = summarize(per_round)
    print(report(summary, options))
    save_results(
        options,
        ran,
        summary,
        [
            {"summary": summary_, "fanouts": samples}
            for summary_, samples in zip(per_round, rounds)
        ],
    )


if __name__ == "__main__":
    main()
