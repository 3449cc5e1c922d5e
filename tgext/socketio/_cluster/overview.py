"""What the admin view shows: each process's part (the cluster operation
``overview``), and the parts of every process put together.

A process answers with plain data (JSON): itself (``host:pid``, uptime),
its namespaces with their client counts, its rooms and PubSub channels with
their members, its clients and its recent events. Python-socketio keeps
rooms per process (an emit to a room reaches every process, each sends it
to its own members), so a room or a channel of the cluster is the union of
its parts. The lists are bounded: a process with many thousands of clients
answers with their counts, and the first :data:`MAX_CLIENTS` of them.
"""

import os
import time

from . import events, local

#: clients a process lists (the oldest connections), members a room or a
#: channel lists; the counts are always whole
MAX_CLIENTS = 500
MAX_MEMBERS = 100
#: rooms and channels a process lists (the largest)
MAX_GROUPS = 500

_started_at = {}  # pid -> when that process started


def process_overview(runtime):
    """This process's part of the overview of ``runtime``'s app.

    From now on, this process keeps its recent events too (an admin is
    looking, though its controller may sit where the app's start-up walk
    did not find it).
    """
    log = events.watch(runtime)
    now = time.time()
    namespaces = {}
    for engine in runtime.engines:
        for name in engine.namespace_classes:
            namespaces.setdefault(name, 0)
    clients, rooms, channels = [], {}, {}
    for engine, instance in local.matching_clients(runtime):
        described = local.describe(engine, instance)
        sid, namespace, user = (
            described["sid"],
            described["namespace"],
            described["user"],
        )
        namespaces[namespace] = namespaces.get(namespace, 0) + 1
        for room in described["rooms"]:
            rooms.setdefault((namespace, room), []).append([sid, user])
        # PubSubTGNamespace's (its class says it shares the app's hub)
        subscribed = (
            instance.subscriptions()
            if getattr(type(instance), "_tgsio_shares_hub", False)
            else []
        )
        for channel in subscribed:
            channels.setdefault(channel, []).append([sid, namespace, user])
        described["channels"] = subscribed
        connected_at = described["connected_at"]
        described["age"] = None if connected_at is None else now - connected_at
        clients.append(described)
    clients.sort(key=lambda client: (client["connected_at"] or 0, client["sid"]))
    started_at = process_started_at()
    return {
        "server": {
            "name": local.server_name(),
            "started_at": started_at,
            "uptime": now - started_at,
            "clients": len(clients),
            "connections": sum(len(engine.eio.sockets) for engine in runtime.engines),
        },
        "namespaces": namespaces,
        "rooms": _bounded_groups(
            {"namespace": namespace, "room": room, "members": members}
            for (namespace, room), members in rooms.items()
        ),
        "channels": _bounded_groups(
            {"channel": channel, "members": members}
            for channel, members in channels.items()
        ),
        "clients": clients[:MAX_CLIENTS],
        "events": [dict(event, server=local.server_name()) for event in log.recent()],
    }


def _bounded_groups(groups):
    """The largest :data:`MAX_GROUPS` rooms or channels, each with its size
    and its first :data:`MAX_MEMBERS` members."""
    groups = sorted(groups, key=lambda group: -len(group["members"]))[:MAX_GROUPS]
    for group in groups:
        group["size"] = len(group["members"])
        group["members"] = group["members"][:MAX_MEMBERS]
    return groups


def merge(parts, asked):
    """The overview of the cluster from each process's part.

    :param parts: what :func:`process_overview` answered in each process.
    :param asked: how many processes the request reached (some may not
        have answered in time).
    """
    servers = sorted((part["server"] for part in parts), key=lambda s: s["name"])
    namespaces, rooms, channels = {}, {}, {}
    clients, recent = [], []
    for part in parts:
        for name, count in part["namespaces"].items():
            namespaces[name] = namespaces.get(name, 0) + count
        for room in part["rooms"]:
            _add_group(rooms, (room["namespace"], room["room"]), room)
        for channel in part["channels"]:
            _add_group(channels, channel["channel"], channel)
        clients.extend(part["clients"])
        recent.extend(part["events"])
    clients.sort(key=lambda client: (client["connected_at"] or 0, client["sid"]))
    recent.sort(key=lambda event: event["time"], reverse=True)
    return {
        "generated_at": time.time(),
        "asked": asked,
        "servers": servers,
        "namespaces": [
            {"namespace": name, "clients": count}
            for name, count in sorted(namespaces.items())
        ],
        "rooms": sorted(rooms.values(), key=lambda r: (r["namespace"], str(r["room"]))),
        "channels": sorted(channels.values(), key=lambda c: str(c["channel"])),
        "clients": clients,
        "clients_total": sum(server["clients"] for server in servers),
        "events": recent[: events.SIZE],
    }


def _add_group(groups, key, group):
    merged = groups.get(key)
    if merged is None:
        groups[key] = dict(group, members=list(group["members"]))
    else:
        merged["members"].extend(group["members"])
        merged["size"] += group["size"]


def process_started_at():
    """When this process started, in seconds since the epoch.

    Linux: from ``/proc`` (a forked worker's own start). Elsewhere: when
    this module first looked, in this process.
    """
    pid = os.getpid()
    started_at = _started_at.get(pid)
    if started_at is not None:
        return started_at
    try:
        with open("/proc/self/stat") as stat:
            # the fields after the command name (which may hold spaces);
            # starttime is the 22nd field, in clock ticks since boot
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as stat:
            booted = next(
                int(line.split()[1]) for line in stat if line.startswith("btime ")
            )
        started_at = booted + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        started_at = time.time()
    _started_at[pid] = started_at
    return started_at
