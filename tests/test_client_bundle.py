"""The socket.io-client bundle the package serves under the resource
(``/socketio/socket.io.min.js``): real servers, real HTTP clients, a headless
Chromium with no network but the server's. setup_client.py, which fetches it
at build time, is tested in test_setup_client.py."""

import gzip
import json
import logging
import os
import re

import pytest
import requests
from tg import expose

from tgext.socketio import BaseNamespace
from tgext.socketio._serving import client_bundle

from .conftest import build_app, controller_for
from .test_example_page import TOP, browser  # noqa: F401 (browser is a fixture)

LOCKFILE = os.path.join(TOP, "package-lock.json")
JS, MAP = "application/javascript; charset=utf-8", "application/json; charset=utf-8"
#: each file served and the Content-Type it must have
FILES = dict.fromkeys(["socket.io.js", "socket.io.min.js"], JS)
FILES.update(dict.fromkeys(["socket.io.js.map", "socket.io.min.js.map"], MAP))
FILES["socket.io.LICENSE"] = "text/plain; charset=utf-8"
IDENTITY = {"Accept-Encoding": "identity"}


def locked():
    with open(LOCKFILE, encoding="utf-8") as lock:
        return json.load(lock)["packages"]["node_modules/socket.io-client"]


def bundle_file(name):
    path = os.path.join(client_bundle.STATIC_DIR, name)
    assert os.path.exists(path), "run `python setup_client.py` (make venv does)"
    with open(path, "rb") as served:
        return served.read()


class PingPong(BaseNamespace):
    def on_ping(self, data):
        self.emit("pong", {"got": data})


PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>bundle</title></head><body>
<script src="/%(resource)s/socket.io.min.js"></script>
<script>
  var socket = io("/pingpong", {path: "/%(resource)s"});
  socket.on("pong", function (data) { window.pong = data; });
  socket.on("connect", function () { socket.emit("ping", "from the page"); });
</script>
</body></html>
"""


def page_controller(resource):
    @expose(content_type="text/html")
    def page(self):
        return PAGE % {"resource": resource}

    return controller_for({"pingpong": PingPong}, page=page)


@pytest.fixture
def server(live_server):
    return live_server(build_app(page_controller("socketio")))


@pytest.mark.parametrize("name", sorted(FILES))
def test_bundle_file_is_served_with_its_content_type(server, name):
    response = requests.get(
        server.url + "/socketio/" + name, headers=IDENTITY, timeout=5
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == FILES[name]
    assert "Content-Encoding" not in response.headers
    assert response.content == bundle_file(name)


def test_bundle_if_none_match_gives_304_with_empty_body(server):
    url = server.url + "/socketio/socket.io.min.js"
    etag = requests.get(url, headers=IDENTITY, timeout=5).headers["ETag"]
    assert re.fullmatch(r'"[A-Za-z0-9_-]+"', etag)
    again = requests.get(
        url, headers=dict(IDENTITY, **{"If-None-Match": etag}), timeout=5
    )
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["ETag"] == etag
    other = requests.get(url, headers={"If-None-Match": '"other"'}, timeout=5)
    assert other.status_code == 200


def test_bundle_is_gzipped_when_the_client_accepts_it(server):
    response = requests.get(
        server.url + "/socketio/socket.io.js",
        headers={"Accept-Encoding": "gzip"},
        stream=True,
        timeout=5,
    )
    raw = response.raw.read(decode_content=False)
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Vary"] == "Accept-Encoding"
    assert (
        int(response.headers["Content-Length"])
        == len(raw)
        < len(bundle_file("socket.io.js"))
    )
    assert gzip.decompress(raw) == bundle_file("socket.io.js")
    identity = requests.get(
        server.url + "/socketio/socket.io.js", headers=IDENTITY, timeout=5
    )
    assert identity.headers["Vary"] == "Accept-Encoding"
    assert identity.headers["ETag"] != response.headers["ETag"]  # one per encoding
    revalidated = requests.get(
        server.url + "/socketio/socket.io.js",
        headers={"Accept-Encoding": "gzip", "If-None-Match": response.headers["ETag"]},
        timeout=5,
    )
    assert revalidated.status_code == 304


def test_bundle_is_not_gzipped_for_a_client_that_does_not_ask(server):
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        connection.putrequest("GET", "/socketio/socket.io.js", skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.getheader("Content-Encoding") is None
    assert body == bundle_file("socket.io.js")


def test_bundle_is_cacheable_by_browsers_and_proxies(server):
    response = requests.get(server.url + "/socketio/socket.io.min.js", timeout=5)
    assert response.headers["Cache-Control"] == "public, max-age=86400"
    # TG's own defaults for pages would stop caching; none is copied over
    assert "Pragma" not in response.headers
    assert "Set-Cookie" not in response.headers


def test_bundle_head_sends_headers_only(server):
    response = requests.head(
        server.url + "/socketio/socket.io.min.js", headers=IDENTITY, timeout=5
    )
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["Content-Length"] == str(
        len(bundle_file("socket.io.min.js"))
    )


def test_bundle_version_is_the_lockfile_version(server):
    version = locked()["version"]
    for name in ("socket.io.js", "socket.io.min.js"):
        head = requests.get(server.url + "/socketio/" + name, timeout=5).text[:200]
        assert re.search(r"\* Socket\.IO v(\S+)\n", head).group(1) == version
    record = json.loads(bundle_file("socket.io-client.json"))
    assert (record["version"], record["integrity"]) == (version, locked()["integrity"])


def test_bundle_licence_is_served_and_named_in_the_bundle(server):
    licence = requests.get(server.url + "/socketio/socket.io.LICENSE", timeout=5).text
    assert licence.startswith("The MIT License (MIT)\n\nCopyright (c) 2014-present")
    assert "Permission is hereby granted, free of charge" in licence
    head = requests.get(server.url + "/socketio/socket.io.min.js", timeout=5).text[:200]
    assert "Released under the MIT License." in head


@pytest.mark.parametrize(
    "resource, config",
    [
        ("chat/live", None),
        ("socket.io", None),  # Node's own path: /socket.io/socket.io.js
        ("socketio", {"disable_request_extensions": True}),
    ],
)
def test_bundle_is_served_under_any_resource(live_server, resource, config):
    app = build_app(page_controller(resource), mount=resource, config=config)
    server = live_server(app, resource)
    for name in ("socket.io.js", "socket.io.min.js.map"):
        response = requests.get(
            "%s/%s/%s" % (server.url, resource, name), headers=IDENTITY, timeout=5
        )
        assert response.status_code == 200
        assert response.content == bundle_file(name)
    if resource != "socketio":
        elsewhere = requests.get(server.url + "/socketio/socket.io.min.js", timeout=5)
        assert elsewhere.status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/socketio/socket.io.css",
        "/socketio/sub/socket.io.js",
        "/socketio/socket.io.js/",
    ],
)
def test_other_paths_below_the_resource_are_404(server, path):
    assert requests.get(server.url + path, timeout=5).status_code == 404


def test_missing_bundle_is_404_with_one_warning_naming_the_fix(
    server, tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(client_bundle, "STATIC_DIR", str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="tgext.socketio.client_bundle"):
        for name in ("socket.io.min.js", "socket.io.js", "socket.io.min.js"):
            response = requests.get(server.url + "/socketio/" + name, timeout=5)
            assert response.status_code == 404
    warnings = [r for r in caplog.records if r.name == "tgext.socketio.client_bundle"]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert message.startswith("socket.io-client bundle missing (FileNotFoundError: ")
    assert str(tmp_path) in message
    assert "run `python setup_client.py` in the tgext.socketio checkout" in message
    assert warnings[0].exc_info is None  # one line, no traceback


def test_page_loads_the_served_bundle_offline_and_gets_pong(server, browser):  # noqa: F811
    page = browser(server.url + "/socketio/page")
    assert page.wait_until("window.pong") == {"got": "from the page"}
    bundle_url = server.url + "/socketio/socket.io.min.js"
    (response,) = [
        event["response"]
        for event in page.events("Network.responseReceived")
        if event["response"]["url"] == bundle_url
    ]
    assert response["status"] == 200
    headers = {name.lower(): value for name, value in response["headers"].items()}
    assert headers["content-encoding"] == "gzip"  # Chromium accepts gzip
    assert headers["content-type"] == "application/javascript; charset=utf-8"
    requested = [
        event["request"]["url"] for event in page.events("Network.requestWillBeSent")
    ]
    assert [url for url in requested if not url.startswith(server.url + "/")] == []
    assert page.events("Runtime.exceptionThrown") == []
