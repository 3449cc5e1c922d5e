"""The boundaries with upstream libraries: one module per library.

Each module here is the only place in the package that names its library's
private names, swaps the classes of that library's objects, or holds a
copy of one of its methods, and says which versions it was checked against.
Everything it relies on is declared with :func:`relies_on` when the module
is imported, so that a release that renames or re-signs one of them stops
the server at start-up with the name to look at, rather than failing a
client later; ``tests/test_upstream.py`` checks the same list.
"""

import inspect
import re

#: every upstream name a boundary module relies on, in declaration order:
#: ``(library, owner, name, parameters)``
RELIED_ON = []


#: the ``parameters`` of an attribute its owner's ``__init__`` sets on ``self``
INSTANCE_ATTRIBUTE = "instance attribute"


class UpstreamChanged(ImportError):
    """An upstream library no longer has what a boundary module relies on."""


def relies_on(library, checked, owner, name, parameters=None):
    """Declare that ``owner.name`` exists (with ``parameters``, if given).

    :param library: the distribution's name (``"python-socketio"``).
    :param checked: the versions it was checked against (``"5.12.0-5.18.1"``).
    :param owner: the module or class holding ``name``.
    :param parameters: the names of its parameters, in order (``self``
        included for a method), ``None`` not to check them, or
        :data:`INSTANCE_ATTRIBUTE` for an attribute ``owner.__init__`` sets.
    :raises UpstreamChanged: the installed version has no such name, or
        its parameters differ.
    """
    RELIED_ON.append((library, checked, owner, name, parameters))
    return check(library, checked, owner, name, parameters)


def check(library, checked, owner, name, parameters=None):
    """``owner.name``, after checking it is what :func:`relies_on` declared."""
    where = "%s.%s" % (getattr(owner, "__qualname__", owner.__name__), name)
    if isinstance(owner, type):
        where = "%s.%s" % (owner.__module__, where)
    try:
        if parameters == INSTANCE_ATTRIBUTE:
            if not re.search(
                r"\bself\.%s\s*=" % name, inspect.getsource(owner.__init__)
            ):
                raise AttributeError(name)
            return name
        value = inspect.getattr_static(owner, name)
    except AttributeError:
        raise UpstreamChanged(
            "%s has no %s any more: tgext.socketio was checked against %s %s; "
            "install one of those versions" % (library, where, library, checked)
        ) from None
    if parameters is not None:
        function = getattr(value, "__func__", value)
        found = list(inspect.signature(function).parameters)
        if found != list(parameters):
            raise UpstreamChanged(
                "%s's %s takes (%s), not (%s) any more: tgext.socketio was "
                "checked against %s %s; install one of those versions"
                % (
                    library,
                    where,
                    ", ".join(found),
                    ", ".join(parameters),
                    library,
                    checked,
                )
            )
    return getattr(owner, name)


def rename_hooks(cls, hooks):
    """Make ``cls``'s methods named as ours answer the upstream names ``hooks``
    maps them to (``{ours: theirs}``), as functions of their own: the upstream
    library then calls them directly, at no cost."""
    for ours, theirs in hooks.items():
        if ours in cls.__dict__:
            setattr(cls, theirs, cls.__dict__[ours])
