"""Draw the benchmark's results as one SVG: ``.venv/bin/python bench/plot.py``.

Reads ``bench/results/latest.json`` (``bench/run.py``: this project against
raw python-socketio and the bare echo ceiling; for results written before the
echo was part of it, the echo of ``bench/results/layers.json``), and writes
``docs/benchmark.svg``: round trips per second at each WebSocket client count
and over long-polling, and memory per idle connection. Plain SVG written by
hand, so it needs nothing installed; ``bench/run.py`` calls it at its end.
"""

import argparse
import json
import os

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
RESULTS = os.path.join(BENCH_DIR, "results", "latest.json")
LAYERS = os.path.join(BENCH_DIR, "results", "layers.json")
OUTPUT = os.path.join(REPO_DIR, "docs", "benchmark.svg")

COLORS = {"tgext": "#2b6cb0", "raw": "#a0aec0", "echo": "#f6ad55"}
LABELS = {
    "tgext": "tgext.socketio (TurboGears, @validate)",
    "raw": "raw python-socketio",
    "echo": "bare WebSocket echo, the ceiling",
}
WIDTH, HEIGHT = 760, 330
PANEL_TOP, PANEL_HEIGHT = 70, 190


def groups_of(results, layers):
    """``[(title, unit, [(label, {kind: value})])]`` for the two panels."""
    summary = results["summary"]
    measured = [kind for kind in ("tgext", "raw", "echo") if kind in summary]
    rates = []
    for clients in results["options"]["clients"]:
        key = str(clients)
        values = {kind: summary[kind]["round_trips"][key]["rate"] for kind in measured}
        if "echo" not in values and clients == layers.get("clients"):
            values["echo"] = layers["echo_rate"]
        rates.append(
            ("%d WS client%s" % (clients, "" if clients == 1 else "s"), values)
        )
    if "polling" in summary["tgext"]:
        rates.append(
            (
                "%d polling" % results["options"]["polling_clients"],
                {kind: summary[kind]["polling"]["rate"] for kind in ("tgext", "raw")},
            )
        )
    memory = [
        (
            "%d idle" % results["options"]["idle_clients"],
            {kind: summary[kind]["kib_per_connection"] for kind in measured},
        )
    ]
    return [
        ("round trips per second", "", rates),
        ("KiB per idle connection", "", memory),
    ]


def panel(x, width, title, groups):
    top = max(value for _, values in groups for value in values.values()) * 1.15
    parts = [
        '<text x="%d" y="%d" class="title">%s</text>' % (x, PANEL_TOP - 12, title),
        '<line x1="%d" y1="%d" x2="%d" y2="%d" class="axis"/>'
        % (x, PANEL_TOP + PANEL_HEIGHT, x + width, PANEL_TOP + PANEL_HEIGHT),
    ]
    slot = width / len(groups)
    for index, (label, values) in enumerate(groups):
        kinds = [kind for kind in ("tgext", "raw", "echo") if kind in values]
        bar = min(28, (slot - 16) / len(kinds))
        left = x + index * slot + (slot - bar * len(kinds)) / 2
        for position, kind in enumerate(kinds):
            height = PANEL_HEIGHT * values[kind] / top
            bar_x = left + position * bar
            bar_y = PANEL_TOP + PANEL_HEIGHT - height
            parts.append(
                '<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>'
                % (bar_x, bar_y, bar - 2, height, COLORS[kind])
            )
            parts.append(
                '<text x="%.1f" y="%.1f" class="value">%s</text>'
                % (bar_x + (bar - 2) / 2, bar_y - 3, format_value(values[kind]))
            )
        parts.append(
            '<text x="%.1f" y="%d" class="label">%s</text>'
            % (x + index * slot + slot / 2, PANEL_TOP + PANEL_HEIGHT + 16, label)
        )
    return parts


def format_value(value):
    return "%.0f" % value if value >= 100 else "%.1f" % value


def svg(results, layers):
    (rate_title, _, rates), (memory_title, _, memory) = groups_of(results, layers)
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
        'viewBox="0 0 %d %d" font-family="sans-serif">'
        % (WIDTH, HEIGHT, WIDTH, HEIGHT),
        "<style>.title{font-size:13px;font-weight:bold}.label{font-size:11px;"
        "text-anchor:middle}.value{font-size:9px;text-anchor:middle}"
        ".axis{stroke:#444}.legend{font-size:11px}</style>",
        '<rect width="100%" height="100%" fill="white"/>',
        '<text x="20" y="22" class="title">%s</text>'
        % "tgext.socketio against raw python-socketio, same server, same machine (%s)"
        % results["environment"].get("started", "")[:10],
    ]
    parts += panel(20, 520, rate_title, rates)
    parts += panel(580, 160, memory_title, memory)
    x = 20
    for kind in ("tgext", "raw", "echo"):
        if kind == "echo" and not layers and "echo" not in results["summary"]:
            continue
        parts.append(
            '<rect x="%d" y="%d" width="10" height="10" fill="%s"/>'
            % (x, HEIGHT - 22, COLORS[kind])
        )
        parts.append(
            '<text x="%d" y="%d" class="legend">%s</text>'
            % (x + 14, HEIGHT - 13, LABELS[kind])
        )
        x += 14 + 7 * len(LABELS[kind]) + 20
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=RESULTS)
    parser.add_argument("--output", default=OUTPUT)
    options = parser.parse_args(argv)
    with open(options.results) as source:
        results = json.load(source)
    layers = {}
    if os.path.exists(LAYERS):
        with open(LAYERS) as source:
            profiles = {p["kind"]: p for p in json.load(source)["profiles"]}
            if "echo" in profiles:
                layers = {"clients": 50, "echo_rate": profiles["echo"]["rate"]}
    os.makedirs(os.path.dirname(options.output), exist_ok=True)
    with open(options.output, "w") as output:
        output.write(svg(results, layers))
    print("plot written to %s" % os.path.relpath(options.output))


if __name__ == "__main__":
    main()
