"""This checkout against an earlier revision: ``.venv/bin/python bench/versus.py REV``.

A change must not cost the hot path more than it says. This runs, in one
run and interleaved, the same measurements on this checkout's
``tgext.socketio`` and on the one of git revision ``REV`` (checked out in a
temporary worktree and put first on ``PYTHONPATH``; the benchmark servers
and the ping-pong example are this checkout's):

* WebSocket round trips per second of the ping-pong example with 50 and
  500 clients (``bench/run.py``'s closed loop, ``--seconds`` each);
* the server's memory per idle WebSocket client in ``/pingpong`` (1,000
  clients, ``bench/run.py``'s measurement, a fresh server each round);
* the time for one message to reach 500 WebSocket clients of one server,
  by ``broadcast_event`` and by ``publish`` on the memory backend
  (``bench/fanout.py``'s servers and load generator, both servers'
  clients connected at once, fan-outs alternated).

It prints each figure for both and their ratio (this / REV): above 1 is
faster for round trips, slower for fan-out times and memory.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from fanout import FanoutServer, LoadGenerator
from fanout import prepare as prepare_fanout
from run import BENCH_DIR, Server, idle_memory, log, round_trips, wait_for_quiet_core

REPOSITORY = os.path.dirname(BENCH_DIR)
WARMUP_FANOUTS = 5
PAUSE_SECONDS = 0.02


_DROP_EDITABLE_HOOK = """
import sys

sys.meta_path[:] = [
    finder for finder in sys.meta_path if "__editable__" not in repr(finder)
]
sys.path[:] = [entry for entry in sys.path if "__editable__" not in entry]
for name in [name for name in sys.modules if name.startswith("tgext")]:
    del sys.modules[name]
"""


class Worktree:
    """Git revision ``rev`` of this repository, checked out in a temporary
    directory; ``env`` puts its package first on ``PYTHONPATH``."""

    def __init__(self, rev):
        self.path = tempfile.mkdtemp(prefix="tgsio-versus-")
        subprocess.run(
            ["git", "worktree", "add", "--detach", self.path, rev],
            cwd=REPOSITORY,
            check=True,
            capture_output=True,
        )
        self.commit = subprocess.run(
            ["git", "rev-parse", "--short", rev],
            cwd=REPOSITORY,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        # this checkout is installed in editable mode, whose import hook would
        # win over PYTHONPATH: a sitecustomize drops it in the base's servers
        self.hooks = tempfile.mkdtemp(prefix="tgsio-versus-site-")
        with open(os.path.join(self.hooks, "sitecustomize.py"), "w") as site:
            site.write(_DROP_EDITABLE_HOOK)
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join([self.hooks, self.path]))
        check = subprocess.run(
            [sys.executable, "-c", "import tgext.socketio as t; print(t.__file__)"],
            env=self.env,
            cwd=self.hooks,  # as the servers run: not from this checkout's root
            capture_output=True,
            text=True,
            check=True,
        )
        if not check.stdout.startswith(self.path):
            raise SystemExit("the worktree's package is not the one imported: %s" % check.stdout)

    def remove(self):
        subprocess.run(
            ["git", "worktree", "remove", "--force", self.path],
            cwd=REPOSITORY,
            capture_output=True,
        )
        shutil.rmtree(self.path, ignore_errors=True)
        shutil.rmtree(self.hooks, ignore_errors=True)


class Variant:
    """What one side of a comparison runs: ``bench/server.py``'s ``kind``
    and ``bench/fanout_server.py`` with ``fanout_args``, in ``env``."""

    def __init__(self, kind="tgext", env=None, fanout_args=()):
        self.kind, self.env, self.fanout_args = kind, env, list(fanout_args)


def compare_round_trips(options, variants, cpu=None):
    """``{(name, clients): [rate, ...]}`` for each of ``variants``
    (``{name: Variant}``, two of them), interleaved; and in ``cpu``, if
    given, the server's CPU microseconds per round trip, the same way (less
    at the mercy of scheduling than the rates)."""
    rates = {}
    for number in range(options.rounds):
        for clients in options.clients:
            order = tuple(variants.items())
            for name, variant in order if number % 2 == 0 else order[::-1]:
                server = Server(variant.kind, options.server_cpu, env=variant.env)
                try:
                    wait_for_quiet_core(options.server_cpu, options.patience)
                    result = round_trips(
                        server, clients, 1, options.seconds, options.load_cpu
                    )
                finally:
                    server.stop()
                rates.setdefault((name, clients), []).append(result["rate"])
                if cpu is not None:
                    cpu.setdefault((name, clients), []).append(
                        result["server_cpu_us_per_round_trip"]
                    )
                log("round trips, %s, %d clients: %.0f/s" % (name, clients, result["rate"]))
    return rates


def compare_idle_memory(options, variants):
    """``{name: [KiB per idle connection, ...]}`` for each of ``variants``."""
    kib = {}
    measure = argparse.Namespace(
        idle_clients=options.idle_clients, settle=2.0, load_cpu=options.load_cpu
    )
    for number in range(options.rounds):
        order = tuple(variants.items())
        for name, variant in order if number % 2 == 0 else order[::-1]:
            server = Server(variant.kind, options.server_cpu, env=variant.env)
            try:
                result = idle_memory(server, measure)
            finally:
                server.stop()
            kib.setdefault(name, []).append(result["kib_per_connection"])
            log("idle memory, %s: %.1f KiB a connection" % (name, kib[name][-1]))
    return kib


def compare_fanouts(options, variants):
    """``{(name, mode): [ms to the last client, ...]}`` for each of ``variants``."""
    servers = {
        name: FanoutServer(
            "memory", None, options.server_cpu, env=variant.env, extra=variant.fanout_args
        )
        for name, variant in variants.items()
    }
    times = {}
    try:
        load = LoadGenerator(servers.values(), options.fanout_clients, options.load_cpu)
        try:
            wait_for_quiet_core(options.server_cpu, options.patience)
            seq = 0
            kinds = [(name, mode) for mode in ("broadcast", "publish") for name in servers]
            for repetition in range(WARMUP_FANOUTS + options.fanouts):
                shift = repetition % len(kinds)
                for name, mode in kinds[shift:] + kinds[:shift]:
                    result = load.fanout(servers[name], mode, seq, None)
                    seq += 1
                    if repetition >= WARMUP_FANOUTS:
                        times.setdefault((name, mode), []).append(result["last_ms"])
                    time.sleep(PAUSE_SECONDS)
        finally:
            load.stop()
    finally:
        for server in servers.values():
            server.stop()
    return times


def compare_on_off(options, variants, title, fanouts=True):
    """Measure ``variants`` (``"on"`` and ``"off"``) interleaved, round trips
    then (``fanouts``) fan-outs, and print the report titled ``title``;
    returns the server's CPU per round trip, ``{(name, clients): [us, ...]}``.
    """
    fanout_options = argparse.Namespace(
        no_pin=options.no_pin, clients=options.fanout_clients * 2
    )
    prepare_fanout(fanout_options)  # cores, open files, the load generator's ws
    options.server_cpu, options.load_cpu = fanout_options.server_cpu, fanout_options.load_cpu
    cpu = {}
    rates = compare_round_trips(options, variants, cpu)
    if fanouts:
        times = compare_fanouts(options, variants)
    else:  # report() prints both fan-outs: mark them unmeasured
        times = {
            (name, mode): [float("nan")]
            for name in variants
            for mode in ("broadcast", "publish")
        }
    print(report("off", rates, {}, times, options, names=("on", "off"), title=title,
                 cpu=cpu))
    return cpu


def report(
    rev, rates, kib, times, options, names=("this", "base"), title=None, cpu=None
):
    """The figures of two variants, ``names`` (the first over the second)."""
    lines = [
        title or "this checkout against %s (medians; ratio this/%s)" % (rev, rev),
        "%-36s %10s %10s %7s" % ("", names[0], rev, "ratio"),
    ]
    for clients in options.clients:
        this, base = (statistics.median(rates[name, clients]) for name in names)
        lines.append(
            "%-36s %10.0f %10.0f %7.3f"
            % ("WS round trips/s, %d clients" % clients, this, base, this / base)
        )
    for clients in options.clients if cpu else ():
        this, base = (statistics.median(cpu[name, clients]) for name in names)
        lines.append(
            "%-36s %10.1f %10.1f %7.3f"
            % ("server CPU us/round trip, %d clients" % clients, this, base, this / base)
        )
    if kib:
        this, base = (statistics.median(kib[name]) for name in names)
        lines.append(
            "%-36s %10.1f %10.1f %7.3f"
            % ("KiB per idle WS client (%d)" % options.idle_clients, this, base, this / base)
        )
    for mode in ("broadcast", "publish"):
        this, base = (statistics.median(times[name, mode]) for name in names)
        lines.append(
            "%-36s %10.2f %10.2f %7.3f"
            % (
                "%s to %d clients, ms (p50)" % (mode, options.fanout_clients),
                this,
                base,
                this / base,
            )
        )
    return "\n".join(lines)


def add_measure_arguments(parser):
    """The options of what is measured (bench/recovery.py shares them)."""
    parser.add_argument("--clients", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fanout-clients", type=int, default=500)
    parser.add_argument("--fanouts", type=int, default=80)
    parser.add_argument("--patience", type=float, default=5.0)
    parser.add_argument("--no-pin", action="store_true")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the git revision to compare with")
    parser.add_argument("--idle-clients", type=int, default=1000, help="0: no memory")
    add_measure_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None):
    options = parse_args(argv)
    options.clients_per_server = options.fanout_clients
    vars(options)["clients"] = options.clients
    fanout_options = argparse.Namespace(
        no_pin=options.no_pin, clients=options.fanout_clients * 2
    )
    prepare_fanout(fanout_options)  # cores, open files, the load generator's ws
    options.server_cpu, options.load_cpu = fanout_options.server_cpu, fanout_options.load_cpu
    worktree = Worktree(options.rev)
    variants = {"this": Variant(), "base": Variant(env=worktree.env)}
    try:
        rates = compare_round_trips(options, variants)
        kib = compare_idle_memory(options, variants) if options.idle_clients else {}
        times = compare_fanouts(options, variants)
    finally:
        worktree.remove()
    print(report(worktree.commit, rates, kib, times, options))


if __name__ == "__main__":
    main()
