"""The ``socketio-options`` directive: the table of every ``socketio.*``
option, rendered from :data:`tgext.socketio._config.settings.OPTIONS`; and
``server-options``: the timeouts and caps of ``[server:main]``, from
``tgext.socketio._serving.admission.SERVER_OPTIONS``.

The option table is the single source of truth: the parser reads it, this
directive renders it, and ``tests/test_config.py`` checks the rendering (this
module imports docutils only, so the test needs no Sphinx).
"""

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList


def shown_default(default):
    """Return the text the reference shows for an option's default."""
    if default is None:
        return "(unset)"
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, (list, tuple)):
        return " ".join(str(item) for item in default)
    return str(default)


def option_rows(server=False):
    """Return ``(key, default, expected, help)`` for every ``socketio.*``
    option (with ``server``: every timeout and cap of ``[server:main]``).

    :returns: a list of tuples of text, in the order of the option table.
    """
    if server:
        from tgext.socketio._serving.admission import SERVER_OPTIONS as OPTIONS

        PREFIX = ""
    else:
        from tgext.socketio._config.settings import OPTIONS, PREFIX

    rows = []
    for name, default, _convert, expected, help_text, *_rest in OPTIONS:
        rows.append((PREFIX + name, shown_default(default), expected, help_text))
    return rows


def option_table_lines(server=False):
    """Return the reST lines of a list-table of :func:`option_rows`."""
    lines = [
        ".. list-table::",
        "   :header-rows: 1",
        "   :widths: 28 10 22 40",
        "",
        "   * - key",
        "     - default",
        "     - value",
        "     - meaning",
    ]
    for key, default, expected, help_text in option_rows(server):
        lines += [
            "   * - ``%s``" % key,
            "     - ``%s``" % default if default != "(unset)" else "     - (unset)",
            "     - %s" % _escaped(expected),
            "     - %s" % help_text,
        ]
    return lines


def _escaped(text):
    """The plain text of ``text`` as reST (``*`` alone is markup there)."""
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("`", "\\`")


class SocketIOOptions(Directive):
    """Render the ``socketio.*`` option table (the directive takes no content)."""

    has_content = False
    server = False

    def run(self):
        container = nodes.container(classes=["socketio-options"])
        lines = StringList(option_table_lines(self.server), source="tgext.socketio options")
        self.state.nested_parse(lines, self.content_offset, container)
        return [container]


class ServerOptions(SocketIOOptions):
    """Render the table of ``[server:main]``'s timeouts and caps."""

    server = True


def setup(app):
    """Register the directives with Sphinx."""
    app.add_directive("socketio-options", SocketIOOptions)
    app.add_directive("server-options", ServerOptions)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
