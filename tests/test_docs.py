"""The documentation site (``docs/``) builds with Sphinx, nitpicky and with
warnings as errors, as ``make docs`` builds it; its configuration reference
lists every ``socketio.*`` option with its default."""

import html
import os
import re
import subprocess
import sys

import pytest

from tgext.socketio._config.settings import OPTIONS, PREFIX

from .test_config import shown_default

#: one process of a parallel run (pytest-xdist, --dist loadgroup) runs every
#: test here: the module-scoped site is built once, not per process
pytestmark = pytest.mark.xdist_group("docs")

HERE = os.path.dirname(os.path.abspath(__file__))
DOCS = os.path.join(os.path.dirname(HERE), "docs")

#: the command of ``make docs``, into a directory of the test's own
SPHINX_BUILD = [
    sys.executable,
    "-m",
    "sphinx",
    "-n",
    "-W",
    "--keep-going",
    "-b",
    "html",
]


@pytest.fixture(scope="module")
def built_site(tmp_path_factory):
    """Build the site once for this module; return the output directory."""
    out = tmp_path_factory.mktemp("docs-html")
    result = subprocess.run(
        SPHINX_BUILD + ["-q", "-d", str(out / ".doctrees"), DOCS, str(out)],
        capture_output=True,
        text=True,
        timeout=110,
    )
    if result.returncode != 0 or result.stderr.strip():
        pytest.fail(
            "sphinx-build failed (exit %d):\n%s%s"
            % (result.returncode, result.stdout, result.stderr)
        )
    return out


def page_text(site, name):
    with open(site / name, encoding="utf-8") as page:
        markup = page.read()
    return html.unescape(re.sub(r"<[^>]+>", " ", markup))


@pytest.mark.timeout(120)
def test_docs_build_without_a_warning(built_site):
    for page in ("index.html", "quickstart.html", "configuration.html", "api.html"):
        assert (built_site / page).exists(), page


@pytest.mark.timeout(120)
def test_configuration_reference_lists_every_option_with_its_default(built_site):
    text = " ".join(page_text(built_site, "configuration.html").split())
    for name, default, *_ in OPTIONS:
        # each row: the key, then its default, as the generated table shows it
        assert "%s%s %s " % (PREFIX, name, shown_default(default)) in text, name


@pytest.mark.timeout(120)
def test_api_reference_documents_the_public_names(built_site):
    text = page_text(built_site, "api.html")
    for name in (
        "SocketIOController",
        "BaseNamespace",
        "SocketIOTGNamespace",
        "BroadcastMixin",
        "RoomsMixin",
        "emit",
        "participants",
        "plugme",
        "PubSubTGNamespace",
        "socketio_server_runner",
        "SocketIOWorker",
        "LiveServer",
        "ChannelClient",
        "channel_members",
        "PublicationTooLarge",
        "MetricsController",
        "child_exit",
    ):
        assert re.search(r"\b%s\b" % name, text), name


def documented_anypubsub_keys():
    """``{key: default}`` of the ``anypubsub.*`` table of configuration.rst."""
    with open(os.path.join(DOCS, "configuration.rst"), encoding="utf-8") as page:
        text = page.read()
    rows = re.findall(r"^``anypubsub\.([a-z_]+)``\s+(\S+)", text, re.M)
    return dict(rows)


def test_anypubsub_reference_lists_the_keys_the_redis_backend_takes():
    from tgext.socketio._channels.hub import DEFAULT_BACKEND, create_backend
    from tgext.socketio.exceptions import ConfigurationError

    documented = documented_anypubsub_keys()
    assert documented.pop("backend") == DEFAULT_BACKEND
    assert set(documented) == {"host", "port", "db", "password", "max_connections"}
    values = {"host": "localhost", "password": "secret"}
    for key in documented:
        # building the backend connects nothing: each documented key is taken
        settings = {
            "anypubsub.backend": "redis",
            "anypubsub." + key: values.get(key, 1),
        }
        create_backend(settings)
    with pytest.raises(ConfigurationError, match="anypubsub.hots"):
        create_backend({"anypubsub.backend": "redis", "anypubsub.hots": "localhost"})


def test_configuration_reference_quotes_the_bad_value_message():
    from tgext.socketio._config.settings import parse_options
    from tgext.socketio.exceptions import ConfigurationError

    with open(os.path.join(DOCS, "configuration.rst"), encoding="utf-8") as page:
        text = " ".join(page.read().split())
    with pytest.raises(ConfigurationError) as error:
        parse_options({"socketio.ping_interval": "soon"})
    assert " ".join(str(error.value).split()) in text


def test_server_reference_lists_the_keys_the_runner_takes():
    from tgext.socketio.server import SERVER_KEYS

    with open(os.path.join(DOCS, "configuration.rst"), encoding="utf-8") as page:
        text = page.read()
    from tgext.socketio._serving.admission import SERVER_OPTIONS

    section = text.split("``[server:main]``\n-----------------", 1)[1]
    documented = set(re.findall(r"^``([a-z_]+)``\s", section, re.M)) - {"use"}
    # the timeouts and caps come in the table the server-options directive
    # renders from SERVER_OPTIONS (tests/test_config.py checks it)
    assert ".. server-options::" in section
    generated = {name for name, *_rest in SERVER_OPTIONS}
    assert documented | generated == set(SERVER_KEYS)


def test_configuration_reference_quotes_the_unknown_key_message():
    from tgext.socketio._config.settings import parse_options
    from tgext.socketio.exceptions import ConfigurationError

    with open(os.path.join(DOCS, "configuration.rst"), encoding="utf-8") as page:
        text = " ".join(page.read().split())
    with pytest.raises(ConfigurationError) as error:
        parse_options({"socketio.ping_intervall": "5"})
    assert " ".join(str(error.value).split()) in text
