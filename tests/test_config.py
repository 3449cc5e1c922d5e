"""The socketio.* options: defaults, conversion, errors naming the key, and
the documentation's configuration reference (generated from the option table
by ``docs/_ext/socketio_options.py``) showing every option with its default."""
import importlib.util
import os

import pytest

from tgext.socketio._config.settings import OPTIONS, PREFIX, parse_options
from tgext.socketio.exceptions import ConfigurationError

#: the Sphinx extension that renders the option table in docs/configuration.rst
OPTIONS_EXTENSION = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "docs",
    "_ext",
    "socketio_options.py",
)


def test_defaults_when_nothing_is_set():
    options = parse_options({})
    assert options == {name: default for name, default, *_ in OPTIONS}
    assert options["cors_allowed_origins"] is None  # same origin only
    assert options["ping_interval"] == 25
    assert options["transports"] == ["polling", "websocket"]


@pytest.mark.parametrize(
    "key, raw, expected",
    [
        ("ping_interval", "10", 10.0),
        ("ping_timeout", "2.5", 2.5),
        ("max_http_buffer_size", "2048", 2048),
        ("max_decode_packets", "50", 50),
        ("transports", "websocket", ["websocket"]),
        ("transports", "polling, websocket", ["polling", "websocket"]),
        ("cors_allowed_origins", "https://a.example https://b.example",
         ["https://a.example", "https://b.example"]),
        ("cors_allowed_origins", "*", "*"),
        ("allow_upgrades", "false", False),
        ("http_compression", "no", False),
        ("message_queue", "redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("message_queue", "", None),
        ("channel", "myapp", "myapp"),
    ],
)
def test_ini_strings_are_converted(key, raw, expected):
    assert parse_options({PREFIX + key: raw})[key] == expected


@pytest.mark.parametrize(
    "key, raw, expected",
    [
        ("ping_interval", "soon", "a positive number of seconds"),
        ("ping_timeout", "-1", "a positive number of seconds"),
        ("max_http_buffer_size", "1.5", "a positive whole number of bytes"),
        ("max_decode_packets", "0", "a positive whole number"),
        ("transports", "carrier-pigeon", "polling, websocket or both"),
        ("cors_allowed_origins", "example.com", "a list of origins"),
        ("allow_upgrades", "perhaps", "true or false"),
        ("message_queue", "localhost", "a URL such as redis://localhost:6379/0"),
        # the PubSub channels' prefix on the backend: never the queue's
        ("channel", "pubsub:events", "a channel name not starting with pubsub:"),
    ],
)
def test_bad_value_raises_configuration_error_naming_the_key(key, raw, expected):
    with pytest.raises(ConfigurationError) as error:
        parse_options({PREFIX + key: raw})
    message = str(error.value)
    assert message.startswith("%s%s = %r is not %s" % (PREFIX, key, raw, expected))
    assert "[app:main]" in message


def test_configuration_error_is_a_tg_config_error():
    from tg.configuration.utils import TGConfigError

    assert issubclass(ConfigurationError, TGConfigError)


def options_extension():
    spec = importlib.util.spec_from_file_location("socketio_options", OPTIONS_EXTENSION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shown_default(default):
    """How the configuration reference must show ``default``."""
    if default is None:
        return "(unset)"
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, list):
        return " ".join(default)
    return str(default)


def test_reference_documents_every_option_with_its_default():
    rows = {key: default for key, default, *_ in options_extension().option_rows()}
    assert set(rows) == {PREFIX + name for name, *_ in OPTIONS}
    for name, default, *_ in OPTIONS:
        assert rows[PREFIX + name] == shown_default(default), name


def test_reference_table_has_a_row_per_option_with_its_help():
    lines = options_extension().option_table_lines()
    text = "\n".join(lines)
    assert lines[0] == ".. list-table::"
    for name, _default, _convert, _expected, help_text, *_ in OPTIONS:
        assert "   * - ``%s%s``" % (PREFIX, name) in lines, name
        assert help_text in text, name


@pytest.mark.parametrize("key, nearest", [
    ("socketio.ping_intervall", "socketio.ping_interval"),
    ("socketio.cors_allowed_origin", "socketio.cors_allowed_origins"),
    ("socketio.transport", "socketio.transports"),
])
def test_a_misspelled_key_is_refused_naming_the_nearest_one(key, nearest):
    with pytest.raises(ConfigurationError) as error:
        parse_options({key: "5"})
    assert str(error.value) == (
        "%s in [app:main] of your .ini file is not a tgext.socketio setting; "
        "did you mean %s?" % (key, nearest)
    )


def test_keys_of_other_packages_are_left_alone():
    options = parse_options({"socketio_admin.enabled": "x", "myapp.socketio.x": 1,
                             "anypubsub.backend": "memory", "socketio": "a value"})
    assert options == parse_options({})


def test_reference_documents_every_server_timeout_and_cap():
    from tgext.socketio._serving.admission import SERVER_OPTIONS

    rows = {key: default for key, default, *_ in options_extension().option_rows(server=True)}
    assert set(rows) == {name for name, *_ in SERVER_OPTIONS}
    for name, default, *_ in SERVER_OPTIONS:
        assert rows[name] == shown_default(default), name


def test_a_server_key_written_in_app_main_says_where_it_belongs():
    with pytest.raises(ConfigurationError) as error:
        parse_options({"socketio.socketio_resource": "live"})
    assert str(error.value) == (
        "socketio.socketio_resource in [app:main] of your .ini file is not a "
        "tgext.socketio setting; socketio_resource belongs in [server:main], "
        "without the socketio. prefix."
    )
