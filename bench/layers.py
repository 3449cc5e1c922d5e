"""Where a round trip's CPU goes, layer by layer: ``.venv/bin/python bench/layers.py``.

Starts each benchmark server (``bench/server.py``: ``tgext``, ``raw``,
``echo``) on the first core, drives it with ``bench/loadgen.c`` (50 clients
in a closed loop, ping -> pong) on the second, and samples the server with
``py-spy`` (a sampling profiler from PyPI, installed into this virtualenv on
the first run; ``--nonblocking``, so the server is never paused) while
reading the server's CPU time from ``/proc``. Every sample is the stack of
the greenlet running at that instant (an idle server is not sampled), so the
share of samples whose innermost Python frame lies in a layer is the share of
the server's CPU that layer costs by itself; times that share by the CPU per
round trip, it is microseconds per round trip. Code running in C (a socket's
``send``, ``json``'s scanner) counts for the Python function that called it.

Writes ``bench/results/layers.json`` and prints the table that
``bench/README.rst`` shows, with each kind's busiest functions.
"""

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from run import BENCH_DIR, REPO_DIR, BenchError, log, read_message
from scale import LOADGEN, build_loadgen

RESULTS_FILE = os.path.join(BENCH_DIR, "results", "layers.json")
KINDS = ("tgext", "raw", "echo")
SAMPLE_RATE = 500  # per second

#: (layer, pattern on the innermost frame's file), the first match wins
LAYERS = (
    ("the handler (examples/pingpong)", r"examples/pingpong/"),
    ("WebSocket frames (gevent-websocket, tgext.socketio._serving.websocket)",
     r"geventwebsocket/|tgext/socketio/websocket\.py"),
    ("tgext.socketio (dispatch, namespace, guards)", r"tgext/socketio/"),
    ("TurboGears (@validate, request context)", r"/tg/|/formencode/|/webob/|/crank/"),
    ("python-engineio (packets, session queue, writer)", r"/engineio/"),
    ("python-socketio (packets, acks, manager)", r"/socketio/"),
    ("JSON (stdlib json)", r"/json/"),
    ("socket I/O (gevent sockets, send/recv in the kernel)", r"gevent/_socket"),
    ("gevent (hub, greenlet switches, queues, timers)", r"/gevent/|greenlet"),
    ("other (stdlib, the WSGI server)", r""),
)
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def ensure_py_spy():
    py_spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(py_spy):
        log("installing py-spy into %s" % os.path.dirname(os.path.dirname(py_spy)))
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "py-spy>=0.3.14,<0.5"],
            check=True,
        )
    return py_spy


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def profile_kind(kind, options, py_spy):
    server = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, os.path.join(BENCH_DIR, "server.py"), kind],
        stdout=subprocess.PIPE,
        cwd=REPO_DIR,
    )
    try:
        port = int(server.stdout.readline())
        url = "ws://127.0.0.1:%d/socketio/?EIO=4&transport=websocket" % port
        load = subprocess.Popen(
            ["taskset", "-c", "1", LOADGEN, "rtt", url, str(options.clients), "1",
             str(options.seconds)],
            stdout=subprocess.PIPE,
        )
        read_message(load, 60, "the load generator")  # measuring
        ticks = cpu_ticks(server.pid)
        with tempfile.NamedTemporaryFile(suffix=".txt") as raw:
            spy = subprocess.Popen(
                [py_spy, "record", "--pid", str(server.pid), "--rate", str(SAMPLE_RATE),
                 "--duration", str(max(1, int(options.seconds) - 1)), "--nonblocking",
                 "--full-filenames", "--format", "raw", "--output", raw.name],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            result = read_message(load, 60 + options.seconds, "the load generator")
            ticks = cpu_ticks(server.pid) - ticks
            spy.wait(60)
            load.wait(30)
            samples = parse_raw(raw.name)
    finally:
        server.terminate()
        server.wait(10)
    cpu_us = 1e6 * ticks / os.sysconf("SC_CLK_TCK") / max(1, result["round_trips"])
    return summarize(kind, samples, result, cpu_us)


def parse_raw(path):
    """py-spy's raw output: ``frame;frame;... count`` per distinct stack."""
    stacks = []
    with open(path) as raw:
        for line in raw:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if stack:
                stacks.append((stack.split(";"), int(count)))
    if not stacks:
        raise BenchError("py-spy took no samples (is ptrace allowed here?)")
    return stacks


def layer_of(frame):
    match = FRAME.match(frame)
    path = match.group("file") if match else frame
    for name, pattern in LAYERS:
        if re.search(pattern, path):
            return name
    return LAYERS[-1][0]


def summarize(kind, stacks, result, cpu_us):
    total = sum(count for _, count in stacks)
    layers = collections.Counter()
    functions = collections.Counter()
    for frames, count in stacks:
        leaf = frames[-1]
        layers[layer_of(leaf)] += count
        functions[leaf] += count
    return {
        "kind": kind,
        "samples": total,
        "rate": result["rate"],
        "server_cpu_us_per_round_trip": cpu_us,
        "layers": {
            name: {"share": count / total, "us_per_round_trip": cpu_us * count / total}
            for name, count in layers.most_common()
        },
        "top_functions": [
            {"function": function, "share": count / total}
            for function, count in functions.most_common(12)
        ],
    }


def report(profiles):
    names = [name for name, _ in LAYERS]
    lines = [
        "CPU per round trip by layer, 50 WebSocket clients (microseconds; "
        "in brackets, % of the server's samples)",
        "%-62s" % "" + "".join("%16s" % profile["kind"] for profile in profiles),
    ]
    for name in names:
        cells = []
        for profile in profiles:
            layer = profile["layers"].get(name)
            cells.append(
                "%16s" % ("%.1f (%2.0f%%)" % (layer["us_per_round_trip"], 100 * layer["share"])
                          if layer else "-")
            )
        if any(cell.strip() != "-" for cell in cells):
            lines.append("%-62s" % name + "".join(cells))
    lines.append(
        "%-62s" % "all (server CPU / round trips, profiler running)"
        + "".join("%16.1f" % p["server_cpu_us_per_round_trip"] for p in profiles)
    )
    lines.append(
        "%-62s" % "round trips per second" + "".join("%16.0f" % p["rate"] for p in profiles)
    )
    for profile in profiles:
        lines += ["", "busiest functions, %s (innermost frame, %% of samples):" % profile["kind"]]
        for entry in profile["top_functions"]:
            function = re.sub(r"\(\S*/site-packages/", "(", entry["function"])
            function = function.replace(REPO_DIR + "/", "")
            lines.append("  %5.1f%%  %s" % (100 * entry["share"], function))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8, help="sampling time per kind")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--output", default=RESULTS_FILE)
    options = parser.parse_args(argv)
    build_loadgen()
    py_spy = ensure_py_spy()
    profiles = []
    for kind in KINDS:
        log("profiling %s" % kind)
        profiles.append(profile_kind(kind, options, py_spy))
        time.sleep(1)
    print(report(profiles))
    os.makedirs(os.path.dirname(options.output), exist_ok=True)
    with open(options.output, "w") as output:
        json.dump({"options": vars(options), "profiles": profiles}, output, indent=2)
    log("results written to %s" % os.path.relpath(options.output))


if __name__ == "__main__":
    main()
