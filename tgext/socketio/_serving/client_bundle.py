"""The socket.io-client browser bundle, served under the Socket.IO resource.

``/<socketio_resource>/socket.io.js``, ``socket.io.min.js``, their source maps
(``.js.map``) and the bundle's licence (``socket.io.LICENSE``) answer from the
package-data folder ``static/``, which the build fills with the pinned,
integrity-checked socket.io-client release (``setup_client.py`` beside
``setup.py``). A page then needs neither npm nor a CDN::

    <script src="/socketio/socket.io.min.js"></script>

Each file is read once per process, with a strong ETag from its sha256 and its
gzip form compressed once, on the first request that accepts gzip. The URL is
the same across upgrades of the bundle, so it is cached for a day
(``CACHE_CONTROL``) and revalidated with its ETag (304) after that.
"""

import base64
import gzip
import hashlib
import logging
import os

from webob import Response

log = logging.getLogger("tgext.socketio.client_bundle")

#: where the build puts the bundle (tests point it elsewhere)
#: the package's ``static/``, beside its ``__init__``
STATIC_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "static"
)
#: served file name -> Content-Type
FILES = {
    "socket.io.js": "application/javascript; charset=utf-8",
    "socket.io.min.js": "application/javascript; charset=utf-8",
    "socket.io.js.map": "application/json; charset=utf-8",
    "socket.io.min.js.map": "application/json; charset=utf-8",
    "socket.io.LICENSE": "text/plain; charset=utf-8",
}
#: one day: an upgraded bundle reaches browsers within a day (see decisions.rst)
CACHE_CONTROL = "public, max-age=86400"
FIX = (
    "run `python setup_client.py` in the tgext.socketio checkout (`make venv` "
    "does), or install tgext.socketio from its wheel or sdist"
)

_assets = {}  # (directory, name) -> _Asset
_warned = set()  # directories a missing bundle was logged for


class _Asset:
    """One file's bytes, ETag and (once asked for) gzip form."""

    def __init__(self, body, content_type):
        self.body = body
        self.content_type = content_type
        digest = hashlib.sha256(body).digest()
        self.etag = base64.urlsafe_b64encode(digest[:18]).decode("ascii")
        self._gzipped = None

    def gzipped(self):
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.body, compresslevel=9, mtime=0)
        return self._gzipped


def response_for(request, args):
    """The response for a bundle URL; None (a 404) when ``request`` is not one.

    ``args`` is the path below the controller as TG dispatched it; TG strips
    the last extension (``socket.io.js`` arrives as ``socket.io``), so the
    file name is read from ``PATH_INFO``. A bundle missing from ``STATIC_DIR``
    is None too, and logs one warning per process naming the fix.
    """
    name = request.path_info.rsplit("/", 1)[-1]
    if len(args) != 1 or name not in FILES or request.method not in ("GET", "HEAD"):
        return None
    asset = _asset(STATIC_DIR, name)
    if asset is None:
        return None
    # only when asked: WebOb takes a missing Accept-Encoding as "anything"
    gzipped = "HTTP_ACCEPT_ENCODING" in request.environ and bool(
        request.accept_encoding.acceptable_offers(["gzip"])
    )
    etag = '"%s%s"' % (asset.etag, "-gzip" if gzipped else "")
    headers = [
        ("ETag", etag),
        ("Cache-Control", CACHE_CONTROL),
        ("Vary", "Accept-Encoding"),
    ]
    if _matches(request.headers.get("If-None-Match"), asset.etag):
        return _BundleResponse("304 Not Modified", headers, b"")
    body = asset.gzipped() if gzipped else asset.body
    headers.append(("Content-Type", asset.content_type))
    if gzipped:
        headers.append(("Content-Encoding", "gzip"))
    headers.append(("Content-Length", str(len(body))))
    return _BundleResponse("200 OK", headers, body)


class _BundleResponse(Response):
    """A response sent with its own headers only.

    TG copies the headers of ``tg.response`` (``Pragma: no-cache``, cookies)
    onto a response an action returns; on a public, cached file they would
    keep browsers and proxies from caching it. TGApp calls the response as a
    WSGI app, which sends what was built here and nothing else.
    """

    def __init__(self, status, headers, body):
        super().__init__(status=status, headerlist=list(headers), body=body)
        self._sent = (status, headers, body)

    def __call__(self, environ, start_response):
        status, headers, body = self._sent
        start_response(status, headers)
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]


def _matches(if_none_match, etag):
    """Whether ``If-None-Match`` names either representation of the file."""
    if not if_none_match:
        return False
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag == "*" or tag.strip('"') in (etag, etag + "-gzip"):
            return True
    return False


def _asset(directory, name):
    key = (directory, name)
    asset = _assets.get(key)
    if asset is None:
        try:
            with open(os.path.join(directory, name), "rb") as bundle_file:
                body = bundle_file.read()
        except OSError as error:
            if directory not in _warned:
                _warned.add(directory)
                log.warning(
                    "socket.io-client bundle missing (%s: %s): %s",
                    type(error).__name__,
                    os.path.join(directory, name),
                    FIX,
                )
            return None
        asset = _assets[key] = _Asset(body, FILES[name])
    return asset
