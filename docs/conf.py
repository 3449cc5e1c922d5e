"""Sphinx configuration of the tgext.socketio documentation.

Build it with ``make docs`` (into ``docs/_build/html``); the test suite builds
it too (``tests/test_docs.py``), with warnings as errors.
"""

import os
import sys

# Patch first, as the server does: importing tgext.socketio.server patches
# the standard library in its module body, and TurboGears must be imported
# after that (its request locals must be greenlet-local).
from gevent import monkey

monkey.patch_all()

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "_ext"))
sys.path.insert(0, os.path.dirname(HERE))  # the checkout, installed or not

from importlib.metadata import PackageNotFoundError  # noqa: E402
from importlib.metadata import version as _dist_version  # noqa: E402

import tgext.socketio  # noqa: E402


def _release():
    try:
        return tgext.socketio.__version__
    except AttributeError:  # a checkout older than __version__
        try:
            return _dist_version("tgext.socketio")
        except PackageNotFoundError:
            return ""


project = "tgext.socketio"
author = "The tgext.socketio developers"
copyright = "the tgext.socketio developers, MIT licence"
release = _release()
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "socketio_options",
]

root_doc = "index"
exclude_patterns = ["_build"]
templates_path = []
nitpicky = True
nitpick_ignore = [
    # python-socketio's own exception (its documentation is not linked here)
    ("py:exc", "socketio.exceptions.TimeoutError"),
]
nitpick_ignore_regex = [
    # private modules that public docstrings name for the curious; this
    # reference documents only the public names
    (r"py:(mod|class|func)", r"tgext\.socketio\.(_\w+|presence)(\..*)?"),
]

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True}

html_theme = "alabaster"
html_static_path = []
html_theme_options = {
    "description": "Socket.IO for TurboGears2",
    "fixed_sidebar": False,
    "page_width": "1140px",
}
