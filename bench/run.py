"""tgext.socketio against raw python-socketio: ``.venv/bin/python bench/run.py``.

Each round starts a fresh ``tgext``, ``raw`` and ``echo`` server
(``bench/server.py``; ``echo`` is the ceiling, a WebSocket loop with no
Socket.IO) and measures them one after the other, metric by metric (A, B, C,
A, B, C...; the order flips every round), so a slow machine or a noisy
neighbour hurts all alike. The echo takes part in what it can serve: memory
and round trips over WebSocket.

* memory per idle connection: the server's RSS with 1000 idle WebSocket
  clients in ``/pingpong`` minus its RSS before, divided by 1000;
* round trips per second, latency p50/p99 and server CPU per round trip with
  1, 50 and 500 WebSocket clients, each sending ``ping`` and waiting for
  ``pong`` before sending the next;
* the same with 50 long-polling clients;
* connect rate: clients per second to open and join 1000 over WebSocket;
  upgrade rate: the same over long-polling, each then upgraded to WebSocket
  (what socket.io-client does by default).

The servers run on one core and the load generator (``bench/loadgen.js``, raw
Socket.IO frames on bare TCP sockets) on another; the CPU both used while
measuring is reported, to show which side was the bottleneck. The table goes
to stdout, every number to ``bench/results/latest.json``.
"""

import argparse
import json
import os
import platform
import resource
import select
import statistics
import subprocess
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
RESULTS_FILE = os.path.join(BENCH_DIR, "results", "latest.json")
KINDS = ("tgext", "raw")
#: the ceiling: no Socket.IO at all (WebSocket round trips and memory only)
CEILING = "echo"
ROUND_TRIP_METRICS = (
    "rate",
    "p50_ms",
    "p99_ms",
    "server_cpu_us_per_round_trip",
    "server_cpu_percent",
    "server_wait_percent",
    "load_cpu_percent",
    "load_wait_percent",
)
WARM_CLIENTS = 10  # connections made before the memory baseline
RSS_SAMPLES = 5  # median of these, 0.2 s apart


class BenchError(RuntimeError):
    pass


# -- processes ----------------------------------------------------------------


def pinned_to(cpu):
    """A ``preexec_fn`` that pins the child (and its threads) to ``cpu``."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def read_message(process, timeout, what):
    """The next JSON line the process writes to stdout (raw, unbuffered)."""
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    if not ready:
        raise BenchError("no answer from %s within %ss" % (what, timeout))
    line = process.stdout.readline()
    if not line:
        raise BenchError("%s exited with status %s" % (what, process.wait()))
    return json.loads(line)


class Server:
    """A ``bench/server.py`` subprocess and what /proc tells about it."""

    def __init__(self, kind, cpu, env=None):
        self.kind = kind
        self.process = subprocess.Popen(
            [sys.executable, os.path.join(BENCH_DIR, "server.py"), kind],
            stdout=subprocess.PIPE,
            bufsize=0,
            preexec_fn=pinned_to(cpu),
            env=env,
        )
        self.port = read_message(self.process, 60, "the %s server" % kind)
        self.url = "ws://127.0.0.1:%d/socketio/?EIO=4&transport=websocket" % self.port

    def rss_kib(self):
        with open("/proc/%d/status" % self.process.pid) as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise BenchError("no VmRSS for the %s server" % self.kind)

    def median_rss_kib(self):
        samples = []
        for _ in range(RSS_SAMPLES):
            samples.append(self.rss_kib())
            time.sleep(0.2)
        return statistics.median(samples)

    def stop(self):
        self.process.terminate()
        self.process.wait(10)


def schedstat(pid):
    """Seconds the process's main thread ran, and waited for a CPU to run on."""
    with open("/proc/%d/schedstat" % pid) as stat:
        ran, waited = stat.read().split()[:2]
    return int(ran) / 1e9, int(waited) / 1e9


def core_busy(cpu, seconds):
    """Fraction of ``seconds`` that ``cpu`` spent running anything."""

    def times():
        with open("/proc/stat") as stat:
            for line in stat:
                if line.startswith("cpu%d " % cpu):
                    fields = [int(field) for field in line.split()[1:]]
                    return sum(fields), fields[3] + fields[4]  # total, idle + iowait
        raise BenchError("no cpu%d in /proc/stat" % cpu)

    total0, idle0 = times()
    time.sleep(seconds)
    total1, idle1 = times()
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def wait_for_quiet_core(cpu, patience):
    """Wait (up to ``patience`` s) until other processes leave ``cpu`` alone.

    Between measurements the servers idle, so whatever keeps their core busy
    belongs to someone else and would steal time from the next measurement.
    """
    if cpu is None:
        return
    deadline = time.monotonic() + patience
    while core_busy(cpu, 0.5) > 0.10 and time.monotonic() < deadline:
        pass


def loadgen(cpu, *args):
    return subprocess.Popen(
        ["node", os.path.join(BENCH_DIR, "loadgen.js"), *map(str, args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        bufsize=0,
        preexec_fn=pinned_to(cpu),
    )


# -- measurements ---------------------------------------------------------------


def round_trips(server, clients, warmup, seconds, cpu, mode="rtt"):
    """Closed-loop ping/pong with ``clients`` clients; server CPU alongside.

    ``mode`` ``"poll"``: over long-polling instead of WebSocket.
    """
    timeout = 60 + warmup + seconds
    process = loadgen(cpu, mode, server.url, clients, warmup, seconds)
    pids = {"server": server.process.pid, "load": process.pid}
    try:
        read_message(process, timeout, "the load generator")  # measuring
        start = {name: schedstat(pid) for name, pid in pids.items()}
        started = time.monotonic()
        result = read_message(process, timeout, "the load generator")
        end = {name: schedstat(pid) for name, pid in pids.items()}
        elapsed = time.monotonic() - started
        process.wait(30)
    finally:
        process.kill()
        process.wait()
    del result["event"]
    result["load_cpu_percent"] = result.pop("cpu_percent")
    (ran0, waited0), (ran1, waited1) = start["server"], end["server"]
    result["server_cpu_percent"] = 100 * (ran1 - ran0) / elapsed
    result["server_cpu_us_per_round_trip"] = (
        1e6 * (ran1 - ran0) / max(1, result["round_trips"])
    )
    result["server_wait_percent"] = 100 * (waited1 - waited0) / elapsed
    result["load_wait_percent"] = 100 * (end["load"][1] - start["load"][1]) / elapsed
    return result


def idle_memory(server, options):
    """KiB of server RSS per idle WebSocket client in ``/pingpong``."""
    round_trips(server, WARM_CLIENTS, 0.2, 0.5, options.load_cpu)
    time.sleep(options.settle)
    before = server.median_rss_kib()
    process = loadgen(options.load_cpu, "idle", server.url, options.idle_clients)
    try:
        read_message(process, 120, "the load generator")  # ready
        time.sleep(options.settle)
        after = server.median_rss_kib()
        process.stdin.close()
        process.wait(30)
    finally:
        process.kill()
        process.wait()
    return {
        "clients": options.idle_clients,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_connection": (after - before) / options.idle_clients,
    }


def connect_rate(server, options, mode="connect"):
    """Clients per second to open and join ``options.connect_clients``.

    ``mode="upgrade"``: each opens and joins over long-polling first, then
    upgrades to WebSocket.
    """
    process = loadgen(options.load_cpu, mode, server.url, options.connect_clients)
    try:
        result = read_message(process, 120, "the load generator")
        process.wait(30)
    finally:
        process.kill()
        process.wait()
    del result["event"]
    return result


def run_round(number, options):
    """Both servers, fresh, measured metric by metric in alternating order."""
    all_kinds = KINDS + (CEILING,) if number % 2 == 0 else (CEILING,) + KINDS[::-1]
    kinds = [kind for kind in all_kinds if kind != CEILING]
    servers = {kind: Server(kind, options.server_cpu) for kind in all_kinds}
    results = {kind: {"round_trips": {}} for kind in all_kinds}
    try:
        for kind in all_kinds:
            log("round %d: %s idle memory" % (number + 1, kind))
            results[kind]["memory"] = idle_memory(servers[kind], options)
        for clients in options.clients:
            for kind in all_kinds:
                log(
                    "round %d: %s round trips, %d clients" % (number + 1, kind, clients)
                )
                wait_for_quiet_core(options.server_cpu, options.patience)
                results[kind]["round_trips"][clients] = round_trips(
                    servers[kind],
                    clients,
                    options.warmup,
                    options.seconds,
                    options.load_cpu,
                )
        if options.connect_clients:
            for kind in kinds:
                log("round %d: %s connect rate" % (number + 1, kind))
                wait_for_quiet_core(options.server_cpu, options.patience)
                results[kind]["connect"] = connect_rate(servers[kind], options)
            for kind in kinds:
                log("round %d: %s upgrade rate" % (number + 1, kind))
                wait_for_quiet_core(options.server_cpu, options.patience)
                results[kind]["upgrade"] = connect_rate(
                    servers[kind], options, mode="upgrade"
                )
        if options.polling_clients:
            for kind in kinds:
                log(
                    "round %d: %s long-polling round trips, %d clients"
                    % (number + 1, kind, options.polling_clients)
                )
                wait_for_quiet_core(options.server_cpu, options.patience)
                results[kind]["polling"] = round_trips(
                    servers[kind],
                    options.polling_clients,
                    options.warmup,
                    options.seconds,
                    options.load_cpu,
                    mode="poll",
                )
    finally:
        for server in servers.values():
            server.stop()
    return results


# -- report -----------------------------------------------------------------------


def summarize(rounds, options):
    """Medians over the rounds, per server and metric."""
    summary = {}
    for kind in KINDS + (CEILING,):
        runs = [r[kind] for r in rounds]
        summary[kind] = {
            "kib_per_connection": statistics.median(
                run["memory"]["kib_per_connection"] for run in runs
            ),
            "round_trips": {
                clients: {
                    key: statistics.median(
                        run["round_trips"][clients][key] for run in runs
                    )
                    for key in ROUND_TRIP_METRICS
                }
                for clients in options.clients
            },
        }
        if kind == CEILING:
            continue
        if options.connect_clients:
            summary[kind]["connect_rate"] = statistics.median(
                run["connect"]["rate"] for run in runs
            )
            summary[kind]["upgrade_rate"] = statistics.median(
                run["upgrade"]["rate"] for run in runs
            )
        if options.polling_clients:
            summary[kind]["polling"] = {
                key: statistics.median(run["polling"][key] for run in runs)
                for key in ROUND_TRIP_METRICS
            }
    return summary


def clients_label(clients):
    return "%d client%s" % (clients, "" if clients == 1 else "s")


def ratio(a, b):
    return a / b if b else float("nan")


def table(title, rows):
    lines = ["", title, "%-14s %12s %12s %8s" % ("", "tgext", "raw", "ratio")]
    for label, tgext, raw, fmt in rows:
        lines.append(
            "%-14s %12s %12s %8.2f" % (label, fmt % tgext, fmt % raw, ratio(tgext, raw))
        )
    return lines


def ceiling_table(title, rows):
    """``table`` with the echo ceiling: (label, tgext, raw, echo, format) rows."""
    lines = [
        "",
        title,
        "%-14s %10s %10s %10s %10s %10s"
        % ("", "tgext", "raw", "echo", "tgext/raw", "tgext/echo"),
    ]
    for label, tgext, raw, echo, fmt in rows:
        lines.append(
            "%-14s %10s %10s %10s %10.2f %10.2f"
            % (
                label,
                fmt % tgext,
                fmt % raw,
                fmt % echo,
                ratio(tgext, raw),
                ratio(tgext, echo),
            )
        )
    return lines


def report(summary, options):
    tg, raw, echo = summary["tgext"], summary["raw"], summary[CEILING]
    lines = [
        "tgext.socketio vs raw python-socketio and the echo ceiling: medians of %d round(s), %gs per "
        "measurement" % (options.rounds, options.seconds),
        "servers on CPU %s, load generator on CPU %s"
        % (options.server_cpu, options.load_cpu),
    ]
    for key, title, fmt in (
        ("rate", "round trips per second (higher is better)", "%.0f"),
        ("p50_ms", "latency p50, ms (lower is better)", "%.2f"),
        ("p99_ms", "latency p99, ms (lower is better)", "%.2f"),
        (
            "server_cpu_us_per_round_trip",
            "server CPU per round trip, us (lower is better; steady on a busy machine)",
            "%.0f",
        ),
    ):
        lines += ceiling_table(
            title,
            [
                (
                    clients_label(clients),
                    tg["round_trips"][clients][key],
                    raw["round_trips"][clients][key],
                    echo["round_trips"][clients][key],
                    fmt,
                )
                for clients in options.clients
            ],
        )
    if options.polling_clients:
        lines += table(
            "long-polling, %d clients (round trips per second, higher is better; "
            "latency in ms and server CPU per round trip in us, lower is better)"
            % options.polling_clients,
            [
                (label, tg["polling"][key], raw["polling"][key], fmt)
                for label, key, fmt in (
                    ("round trips/s", "rate", "%.0f"),
                    ("p50 ms", "p50_ms", "%.2f"),
                    ("p99 ms", "p99_ms", "%.2f"),
                    ("CPU us/rt", "server_cpu_us_per_round_trip", "%.0f"),
                )
            ],
        )
    if options.connect_clients:
        lines += table(
            "connect rate, clients per second to open and join %d over WebSocket "
            "(higher is better)" % options.connect_clients,
            [("clients/s", tg["connect_rate"], raw["connect_rate"], "%.0f")],
        )
        lines += table(
            "upgrade rate, clients per second to open and join %d over long-polling, "
            "then upgrade to WebSocket (higher is better)" % options.connect_clients,
            [("clients/s", tg["upgrade_rate"], raw["upgrade_rate"], "%.0f")],
        )
    lines += ceiling_table(
        "memory per idle connection, KiB (%d clients; lower is better)"
        % options.idle_clients,
        [
            (
                "per conn.",
                tg["kib_per_connection"],
                raw["kib_per_connection"],
                echo["kib_per_connection"],
                "%.1f",
            )
        ],
    )
    lines += cpu_lines(summary, options)
    lines += key_lines(summary, options)
    return "\n".join(lines)


def cpu_lines(summary, options):
    """Who was busy: the servers' CPU, the load generator's, and contention."""
    lines = [
        "",
        "CPU while measuring round trips, % of one core; in brackets, % of the",
        "time it was runnable but waited for its core (taken by other processes)",
        "%-14s %12s %12s %12s %12s"
        % ("", "tgext server", "raw server", "echo server", "load gen."),
    ]
    for clients in options.clients:
        runs = [summary[kind]["round_trips"][clients] for kind in KINDS + (CEILING,)]
        cells = [
            "%.0f (%.0f)" % (run["server_cpu_percent"], run["server_wait_percent"])
            for run in runs
        ]
        load = max(runs, key=lambda run: run["load_cpu_percent"])
        cells.append(
            "%.0f (%.0f)" % (load["load_cpu_percent"], load["load_wait_percent"])
        )
        lines.append("%-14s %12s %12s %12s %12s" % (clients_label(clients), *cells))
    return lines


def key_lines(summary, options):
    tg, raw = summary["tgext"], summary["raw"]
    lines = ["", "key ratios (tgext/raw)"]
    if 50 in options.clients:
        tg50, raw50 = tg["round_trips"][50], raw["round_trips"][50]
        value = ratio(tg50["rate"], raw50["rate"])
        lines.append(
            "  round trips at 50 clients        %.2f  target >= 0.90  %s"
            % (value, "ok" if value >= 0.90 else "MISSED")
        )
        lines.append(
            "  round trips per CPU s, 50 cl.    %.2f  (raw/tgext CPU per round trip)"
            % ratio(
                raw50["server_cpu_us_per_round_trip"],
                tg50["server_cpu_us_per_round_trip"],
            )
        )
    value = ratio(tg["kib_per_connection"], raw["kib_per_connection"])
    lines.append(
        "  memory per idle connection       %.2f  target <= 1.20  %s"
        % (value, "ok" if value <= 1.20 else "MISSED")
    )
    lines += ["", "key figures against the echo ceiling"]
    for clients in options.clients:
        value = ratio(
            tg["round_trips"][clients]["rate"],
            summary[CEILING]["round_trips"][clients]["rate"],
        )
        lines.append(
            "  round trips, tgext/echo, %-6s %.2f  target >= 0.60  %s"
            % ("%d cl." % clients, value, "ok" if value >= 0.60 else "MISSED")
        )
    kib = tg["kib_per_connection"]
    lines.append(
        "  KiB per idle connection          %.1f  target <= 39.1 (40 KB)  %s"
        % (kib, "ok" if kib <= 40_000 / 1024 else "MISSED")
    )

    measured = [
        summary[kind]["round_trips"][clients]
        for kind in KINDS + (CEILING,)
        for clients in options.clients
    ]
    load_peak = max(run["load_cpu_percent"] for run in measured)
    wait_peak = max(run["server_wait_percent"] for run in measured)
    busiest = [summary[kind]["round_trips"][max(options.clients)] for kind in KINDS]
    busy = min(
        run["server_cpu_percent"] + run["server_wait_percent"] for run in busiest
    )
    lines += [
        "",
        "bottleneck",
        "  load generator: at most %.0f%% of its core: %s"
        % (
            load_peak,
            "not the bottleneck" if load_peak < 80 else "POSSIBLY THE BOTTLENECK",
        ),
        "  servers at %d clients: running or waiting for their core >= %.0f%% of the time"
        % (max(options.clients), busy),
    ]
    if wait_peak > 5:
        lines.append(
            "  NOISY: other processes took the servers' core up to %.0f%% of a "
            "measurement; compare CPU per round trip" % wait_peak
        )
    return lines


# -- set-up -----------------------------------------------------------------------


def log(message):
    print(message, file=sys.stderr, flush=True)


def pin_cores(options):
    """Pick the servers' and the load's cores (``None`` with ``--no-pin``);
    this script stays off the servers' core too."""
    cpus = sorted(os.sched_getaffinity(0))
    if options.no_pin or len(cpus) < 2:
        options.server_cpu = options.load_cpu = None
    else:
        options.server_cpu, options.load_cpu = cpus[0], cpus[1]
        os.sched_setaffinity(0, {options.load_cpu})


def raise_open_files(wanted):
    """Raise this process's open-files limit to ``wanted`` (or its hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))


def install_node_packages():
    """The load generators' npm packages (``ws``), into bench/node_modules."""
    if not os.path.isdir(os.path.join(BENCH_DIR, "node_modules", "ws")):
        log("installing the load generator's npm packages into bench/node_modules")
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=BENCH_DIR,
            check=True,
        )


def save_results(options, ran, summary, rounds):
    """Write the run's JSON to ``options.output``."""
    results = {
        "options": {k: v for k, v in vars(options).items() if k != "output"},
        "environment": ran,
        "summary": summary,
        "rounds": rounds,
    }
    os.makedirs(os.path.dirname(options.output), exist_ok=True)
    with open(options.output, "w") as output:
        json.dump(results, output, indent=2)
    log("results written to %s" % os.path.relpath(options.output))


def prepare(options):
    """Pick the cores, raise the open-files limit."""
    pin_cores(options)
    raise_open_files(2 * options.idle_clients + max(options.clients) + 1000)


def git_state():
    def git(*args):
        return subprocess.run(
            ["git", *args], cwd=REPO_DIR, capture_output=True, text=True
        ).stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--", "tgext", "examples")),
    }


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds",
        type=float,
        default=5.0,
        help="length of each round-trip measurement (default 5)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument(
        "--warmup",
        type=float,
        default=1.0,
        help="seconds of load before each measurement (default 1)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=2.0,
        help="seconds to wait before reading RSS (default 2)",
    )
    parser.add_argument(
        "--clients",
        default="1,50,500",
        help="comma-separated client counts (default 1,50,500)",
    )
    parser.add_argument(
        "--idle-clients",
        type=int,
        default=1000,
        help="idle clients for the memory measurement (default 1000)",
    )
    parser.add_argument(
        "--connect-clients",
        type=int,
        default=1000,
        help="clients of the connect-rate and upgrade-rate measurements "
        "(default 1000; 0: none)",
    )
    parser.add_argument(
        "--polling-clients",
        type=int,
        default=50,
        help="long-polling clients of the polling measurement (default 50; 0: none)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 round of 1 s measurements"
    )
    parser.add_argument(
        "--patience",
        type=float,
        default=5.0,
        help="seconds to wait, before each measurement, for other "
        "processes to leave the servers' core (default 5)",
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin processes to cores"
    )
    parser.add_argument(
        "--output", default=RESULTS_FILE, help="where to write the JSON"
    )
    options = parser.parse_args(argv)
    if options.quick:
        quick = dict(seconds=1.0, rounds=1, warmup=0.3, settle=0.5, patience=2.0)
        vars(options).update(quick)
    options.clients = [int(count) for count in options.clients.split(",")]
    return options


def environment():
    """What ran: taken before the first round (others may commit meanwhile)."""
    node = subprocess.run(["node", "--version"], capture_output=True, text=True)
    return {
        "python": platform.python_version(),
        "node": node.stdout.strip(),
        "cpus": os.cpu_count(),
        "git": git_state(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def main(argv=None):
    options = parse_args(argv)
    prepare(options)
    started, ran = time.monotonic(), environment()
    rounds = [run_round(number, options) for number in range(options.rounds)]
    ran["duration_seconds"] = round(time.monotonic() - started, 1)
    summary = summarize(rounds, options)
    print(report(summary, options))
    save_results(options, ran, summary, rounds)
    if options.output == RESULTS_FILE:  # the plot of docs/ shows the default run
        import plot

        plot.main([])


if __name__ == "__main__":
    main()
