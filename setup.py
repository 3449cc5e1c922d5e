import os
import re
import sys

from setuptools import find_namespace_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

here = os.path.abspath(os.path.dirname(__file__))
sys.path.insert(0, here)  # setup_client.py, beside this file (and in the sdist)
from setup_client import ensure_client, report  # noqa: E402

with open(os.path.join(here, "README.rst"), encoding="utf-8") as readme:
    long_description = readme.read()
# the package's __version__, read without importing it (it needs gevent)
init_path = os.path.join(here, "tgext", "socketio", "__init__.py")
with open(init_path, encoding="utf-8") as init:
    version = re.search(r'(?m)^__version__ = "([^"]+)"$', init.read()).group(1)

# the documentation site (docs/, `make docs`); the suite builds it too
# [docs]: Sphinx, and what autodoc imports to document the gunicorn worker and
# the test helper (gunicorn, requests, websocket-client)
docs_requires = [
    "Sphinx>=7.2,<10",
    "gunicorn>=22,<24",
    "requests>=2.28,<3",
    "websocket-client>=1.5,<2",
]

# [testing]: what tgext.socketio.testing needs (requests, websocket-client:
# python-socketio's client uses them for long-polling and WebSocket), then
# what the project's own suite needs (`make test` installs this extra): pytest,
# the docs build, the apps' and tests' libraries, and build + twine for
# tests/test_release.py. One extra, as docs/install.rst and docs/decisions.rst say.
testing_requires = docs_requires + [
    "pytest>=7,<10",
    "pytest-timeout>=2.1,<3",
    # make test runs the suite on several processes (-n, --dist loadgroup)
    "pytest-xdist>=3.5,<4",
    "WebTest>=3,<4",
    "FormEncode>=2.0,<3",
    "kajiki>=0.9,<2",
    "anypubsub>=0.6,<0.7",
    "redis>=5,<9",
    "repoze.who>=2.3,<4",
    "backlash>=0.3,<0.6",
    "Beaker>=1.12,<2",
    "tgext.pluggable>=0.8,<1",
    "hypothesis>=6.100,<7",
    # make lint (part of make test): the rules in ruff.toml
    "ruff>=0.5,<1",
    "build>=1.2.1,<2",
    # 6.1 is the first to read Metadata-Version 2.4, which setuptools writes
    "twine>=6.1,<8",
    # tests/test_metrics.py: the [metrics] extra
    "prometheus_client>=0.20,<1",
]


class BuildPyWithClient(build_py):
    """build_py, after fetching the served socket.io-client (setup_client.py)."""

    def run(self):
        ensure_client(log=report)
        super().run()


class SdistWithClient(sdist):
    """sdist, after fetching the served socket.io-client: the sdist carries it."""

    def run(self):
        ensure_client(log=report)
        super().run()


setup(
    name="tgext.socketio",
    version=version,
    description="Socket.IO for TurboGears2, on python-socketio and gevent",
    long_description=long_description,
    long_description_content_type="text/x-rst",
    classifiers=[
        "Development Status :: 4 - Beta",
        "Environment :: Web Environment",
        "Framework :: TurboGears",
        "Framework :: TurboGears :: Applications",
        "Intended Audience :: Developers",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: Internet :: WWW/HTTP :: WSGI",
    ],
    keywords="turbogears2.extension socketio gevent websocket",
    author="The tgext.socketio developers",
    license="MIT",
    project_urls={
        "Documentation": "https://github.com/TurboGears/tgext.socketio/tree/main/docs",
        "Changes": "https://github.com/TurboGears/tgext.socketio/blob/main/CHANGES.rst",
        "Source": "https://github.com/TurboGears/tgext.socketio",
        "Issue tracker": "https://github.com/TurboGears/tgext.socketio/issues",
    },
    # tgext is a PEP 420 namespace shared with the other tgext.* distributions
    # (tgext.pluggable 0.9 ships it the same way): no tgext/__init__.py.
    packages=find_namespace_packages(include=["tgext.*"]),
    include_package_data=True,
    # the socket.io-client bundle setup_client.py fetches (git-ignored)
    package_data={"tgext.socketio": ["static/*"]},
    cmdclass={"build_py": BuildPyWithClient, "sdist": SdistWithClient},
    zip_safe=False,
    python_requires=">=3.10",
    install_requires=[
        "TurboGears2>=2.5.1,<2.6",
        "python-socketio>=5.12,<6",
        # 4.12.2: its client (tgext.socketio.testing's) runs on gevent 25.4+
        "python-engineio>=4.12.2,<5",
        # 25.4.1 makes the queue module's LifoQueue cooperative: before it,
        # urllib3's and redis-py's blocking pool (LifoQueue) could hang the
        # process for good (docs/decisions.rst); it also has wheels for 3.13
        "gevent>=25.4.1,<27",
        "gevent-websocket>=0.10.1,<0.11",
        # unmasks WebSocket frames in C (gevent-websocket does it in Python);
        # Python 3.13 needs wsaccel 0.6.7, the first with wheels for it
        "wsaccel>=0.6.6,<0.7; python_version < '3.13'",
        "wsaccel>=0.6.7,<0.7; python_version >= '3.13'",
        # gearbox before 0.4 imports pkg_resources without requiring
        # setuptools, which 3.12's virtualenvs no longer carry (and setuptools
        # 81+ no longer ships pkg_resources); 0.4 needs PasteDeploy 3.1
        "gearbox>=0.2.1,<0.6; python_version < '3.12'",
        "gearbox>=0.4,<0.6; python_version >= '3.12'",
        "PasteDeploy>=3,<4",
        # PubSubTGNamespace's backends (memory built in; Redis with [redis])
        "anypubsub>=0.6,<0.7",
    ],
    extras_require={
        # kept for 0.0.x-era requirements files: anypubsub is now a dependency
        "pubsub": [],
        "redis": ["redis>=5,<9"],
        # the worker class tgext.socketio.gunicorn.SocketIOWorker
        "gunicorn": ["gunicorn>=22,<24"],
        # socketio.metrics and tgext.socketio.MetricsController (docs/metrics.rst)
        "metrics": ["prometheus_client>=0.20,<1"],
        "testing": testing_requires,
        "docs": docs_requires,
    },
    entry_points={
        "paste.server_runner": [
            "socketio = tgext.socketio.server:socketio_server_runner",
        ],
    },
)
