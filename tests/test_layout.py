"""The package's layout: no import circle between its modules, and the
private names of upstream libraries only in their boundary modules."""

import ast
import pathlib

import tgext.socketio

PACKAGE_DIR = pathlib.Path(tgext.socketio.__file__).parent


def _modules():
    """``{"tgext.socketio.x.y": path}`` of every module of the package."""
    modules = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(("tgext", "socketio", *parts))] = path
    return modules


def _imports(name, path, modules):
    """The package's modules ``name`` imports, at the top or in a function."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [base + "." + alias.name for alias in node.names]
        else:
            continue
        found.update(target for target in targets if target in modules)
    found.discard(name)
    # a module imports its packages' __init__ too; those hold no imports
    # of the package's own modules but the lazy public names
    return {target for target in found if target != "tgext.socketio"}


def test_no_module_of_the_package_imports_itself_in_a_circle():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert graph["tgext.socketio.pubsub"], "the import graph was read"
    circles = []

    def visit(name, trail):
        for target in sorted(graph[name]):
            if target in trail:
                circles.append(trail[trail.index(target) :] + [target])
            elif target not in done:
                visit(target, trail + [target])
        done.add(name)

    done = set()
    for name in sorted(graph):
        if name not in done:
            visit(name, [name])
    assert circles == []
