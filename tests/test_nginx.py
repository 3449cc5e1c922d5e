"""Two server processes (``gearbox serve``, ``socketio.node_id`` a and b)
behind a real nginx from Debian, with the configuration docs/scaling.rst gives,
sharing the suite's redis-server: every client and transport connects
through nginx and stays on its process; broadcasts, rooms, publishes and
emits from a worker process reach the clients of both processes once;
presence lists both processes' clients."""
import collections
import os
import shutil
import subprocess
import sys
import uuid

import gevent
import pytest
import requests
import socketio
import websocket

from .test_server_runner import GearboxServer, free_port
from .test_wire_js import FIRST_TRANSPORT, LAST_TRANSPORT, TRANSPORTS, JsClient

#: the nginx configuration of docs/scaling.rst (section "nginx"), ports
#: filled in; test_configuration_is_the_documented_one keeps the two in step
NGINX_CONF = """\
worker_processes 1;
error_log {here}/error.log;
pid {here}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {here}/body;
    proxy_temp_path {here}/proxy;
    fastcgi_temp_path {here}/fastcgi;
    uwsgi_temp_path {here}/uwsgi;
    scgi_temp_path {here}/scgi;

    # sticky routing: a session id starts with the node_id of its server
    map $arg_sid $socketio_upstream {{
        ~^a[.-]  socketio_a;
        ~^b[.-]  socketio_b;
        default  socketio_any;
    }}
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}
    upstream socketio_a   {{ server 127.0.0.1:{port_a}; }}
    upstream socketio_b   {{ server 127.0.0.1:{port_b}; }}
    upstream socketio_any {{ server 127.0.0.1:{port_a}; server 127.0.0.1:{port_b}; }}

    server {{
        listen 127.0.0.1:{port};
        location /socketio/ {{
            proxy_pass http://$socketio_upstream;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;  # with the port: the origin check compares it
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_buffering off;
            proxy_read_timeout 75s;  # longer than socketio.ping_interval
        }}
        location / {{
            proxy_pass http://socketio_any;
            proxy_set_header Host $http_host;  # with the port: the origin check compares it
        }}
    }}
}}
"""


DOCS_PAGE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "scaling.rst"
)


def documented_nginx_configuration():
    """The literal block under the heading "nginx" of docs/scaling.rst."""
    with open(DOCS_PAGE, encoding="utf-8") as page:
        section = page.read().split("\nnginx\n-----\n", 1)[1]
    lines = []
    for line in section.split("::\n\n", 1)[1].splitlines():
        if line and not line.startswith("    "):
            break
        lines.append(line)
    return "\n".join(lines)


def directives(configuration):
    """Its lines without comments and spacing, leaving out addresses and ports
    (``server``, ``listen``), which differ between the page and the test."""
    lines = set()
    for line in configuration.replace("{{", "{").replace("}}", "}").splitlines():
        line = " ".join(line.split("#", 1)[0].split())
        if line and not line.startswith(("listen ", "server ")) and " server " not in line:
            lines.add(line)
    return lines


def test_configuration_is_the_documented_one():
    documented = directives(documented_nginx_configuration())
    assert "map $arg_sid $socketio_upstream {" in documented
    assert documented <= directives(NGINX_CONF), documented - directives(NGINX_CONF)


@pytest.fixture
def cluster(tmp_path_factory, redis_server):
    """nginx on a free port in front of two gearbox servers; yields nginx's URL."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert os.path.exists(nginx), "nginx is missing: run `make services` (docs/development.rst)"
    channel = "cluster-" + uuid.uuid4().hex
    servers = []
    for node in ("a", "b"):
        extra = ("socketio.message_queue = {url}\nsocketio.channel = {channel}\n"
                 "socketio.node_id = {node}\nanypubsub.backend = redis\n"
                 "anypubsub.host = {url}").format(url=redis_server, channel=channel,
                                                  node=node)
        servers.append(GearboxServer(tmp_path_factory.mktemp("node-" + node), extra=extra))
    here = tmp_path_factory.mktemp("nginx")
    port = free_port()
    (here / "nginx.conf").write_text(NGINX_CONF.format(
        here=here, port=port, port_a=servers[0].port, port_b=servers[1].port))
    process = subprocess.Popen([nginx, "-p", str(here), "-c", str(here / "nginx.conf"),
                                "-g", "daemon off;"], stderr=subprocess.PIPE)
    try:
        for server in servers:
            server.wait_for_log("serving Socket.IO at")
        url = "http://127.0.0.1:%d" % port
        with gevent.Timeout(10, AssertionError("nginx does not answer")):
            while True:
                try:
                    if requests.get(url + "/socketio/page", timeout=1).ok:
                        break
                except requests.RequestException:
                    gevent.sleep(0.05)
        yield url, redis_server, channel
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stderr.close()
        for server in servers:
            server.stop()


def connect(client_factory, url, transport, namespace="/probe"):
    client = client_factory(socketio.Client(reconnection=False))
    client.connect(url, namespaces=[namespace], socketio_path="socketio",
                   transports=["polling", "websocket"] if transport == "upgrade"
                   else [transport], wait_timeout=10)
    return client


def test_every_client_and_transport_connects_through_nginx_and_stays(
    cluster, client_factory
):
    url, _redis, _channel = cluster
    clients = [connect(client_factory, url, "polling") for _ in range(50)]
    clients += [connect(client_factory, url, transport)
                for transport in ("websocket", "upgrade") for _ in range(5)]
    pids = collections.Counter()
    for _ in range(3):  # every session keeps working on its process
        for client in clients:
            pids[client.call("whoami", namespace="/probe", timeout=10)] += 1
    assert len(pids) == 2, pids
    for transport in TRANSPORTS:
        js = JsClient(url + "/probe", TRANSPORTS[transport], "/socketio")
        try:
            opened = js.wait(lambda m: m["type"] in ("open", "connect_error"))
            assert opened == {"type": "open", "transport": FIRST_TRANSPORT[transport]}
            js.wait_for_type("connect")
            assert js.call("ping", {"type": "ping"}) == ["ack"]
            if transport == "upgrade":
                js.wait_for_type("upgrade", timeout=10, seen=True)
            assert js.transport() == LAST_TRANSPORT[transport]
        finally:
            js.close()


def listen(client, event, namespace="/probe"):
    heard = []
    if event == "pubblication":  # (message, channel): the message is heard
        client.on(event, lambda message, channel: heard.append(message), namespace=namespace)
    else:
        client.on(event, heard.append, namespace=namespace)
    return heard


def exactly_once(heard_lists, expected, timeout=10):
    with gevent.Timeout(timeout, AssertionError(heard_lists)):
        while any(len(heard) < 1 for heard in heard_lists):
            gevent.sleep(0.05)
    gevent.sleep(0.3)
    assert all(heard == [expected] for heard in heard_lists), heard_lists


def test_broadcast_room_publish_and_worker_emit_reach_both_processes_once(
    cluster, client_factory
):
    url, redis_url, channel = cluster
    clients, pids = [], set()
    while len(pids) < 2 or len(clients) < 6:
        client = connect(client_factory, url, "websocket")
        clients.append(client)
        pids.add(client.call("whoami", namespace="/probe", timeout=10))
    heard = [listen(client, "heard") for client in clients]

    clients[0].emit("shout", "broadcast", namespace="/probe")
    exactly_once(heard, "broadcast")

    for lists in heard:
        del lists[:]
    members = clients[1:]
    for client in members:
        client.call("join", "tea", namespace="/probe", timeout=10)
    clients[0].emit("to_room", ("tea", "room emit"), namespace="/probe")
    exactly_once(heard[1:], "room emit")
    assert heard[0] == []

    news_clients = [connect(client_factory, url, "websocket", "/news") for _ in range(6)]
    news = [listen(client, "pubblication", "/news") for client in news_clients]
    for client in news_clients:
        assert client.call("subscribe", "news", namespace="/news", timeout=10) == "news"
    assert news_clients[0].call("publish", "published", namespace="/news", timeout=10)
    exactly_once(news, "published")

    for lists in heard:
        del lists[:]
    script = ("from tgext.socketio import emit; emit('heard', 'from a worker', "
              "namespace='/probe', message_queue=%r, channel=%r)" % (redis_url, channel))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    exactly_once(heard, "from a worker")


def test_presence_lists_both_processes_and_drops_a_cut_client(
    cluster, client_factory
):
    url, _redis, _channel = cluster
    clients, by_pid = [], collections.defaultdict(list)
    while len(by_pid) < 2 or len(clients) < 4:
        client = connect(client_factory, url, "websocket")
        clients.append(client)
        by_pid[client.call("whoami", namespace="/probe", timeout=10)].append(client)
    sids = sorted(client.get_sid("/probe") for client in clients)

    def who():
        return clients[0].call("who", namespace="/probe", timeout=10)

    with gevent.Timeout(10, AssertionError("presence: %s" % who())):
        while who() != sids:
            gevent.sleep(0.05)

    ws_url = url.replace("http", "ws") + "/socketio/?EIO=4&transport=websocket"
    sock = websocket.create_connection(ws_url, timeout=5)
    assert sock.recv().startswith("0{")
    sock.send("40/probe,")
    cut_sid = sock.recv().split('"sid":"')[1].split('"')[0]
    with gevent.Timeout(10, AssertionError("the new client never listed")):
        while cut_sid not in who():
            gevent.sleep(0.05)
    sock.sock.shutdown(2)  # the client's TCP connection is cut: no goodbye
    sock.shutdown()
    with gevent.Timeout(10, AssertionError("the cut client is still listed")):
        while cut_sid in who():
            gevent.sleep(0.1)
