"""The package's shape (docs/development.md, "Layout"): each folder one concern, the imports
running one way, no module over 400 lines, the built-in plugins loaded by the engine alone.

Every ``import`` statement counts, the ones inside functions too: a lazy import is still an
arrow. Read with ``ast`` from the source, so nothing is imported here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "glidein_plugins"

# Lowest first: a module may import its own layer and the layers below it, never one above.
# The root package (glidein_plugins/__init__.py, the public API) imports its names lazily
# from spec/ and config/, and may be imported from anywhere above them.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("_version", "_where", "errors"),  # the vocabulary every layer shares
    ("node",),  # the worker node: bounded commands, paths, CVMFS paths, files, threads
    ("protocol",),  # GlideinWMS's and HTCondor's formats
    ("config",),  # the factory configuration and the plugins' settings declarations
    ("spec",),  # the contract with plugins: hooks, results, the Context
    ("", "container", "gpu"),  # the public API (root), and the libraries plugins call
    ("jobstart",),  # job start's libraries: plan, command, native knobs, setup state
    ("engine",),  # loads the plugins and runs the hooks
    ("runs",),  # setup, the periodic re-check and job start, each built on the engine
    ("builtin", "vo"),  # the plugins: only the engine loads them, by name
    ("testing", "tarball", "cli", "__main__"),  # the faces: the kit, pack, the command line
)
PLUGIN_FOLDERS = ("builtin", "vo")
MAX_LINES = 400


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path) -> set[str]:
    """Every module of the package that ``name`` imports (``from X import y`` counts as
    ``X.y`` when that is a module)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                       for alias in node.names]
        else:
            continue
        found.update(target for target in targets if target in MODULES and target != name)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _folder(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def _layer(name: str) -> int:
    folder = _folder(name)
    for rank, folders in enumerate(LAYERS):
        if folder in folders:
            return rank
    raise AssertionError(f"{name}: its folder {folder!r} is in no layer of LAYERS")


def test_every_module_is_in_a_layer() -> None:
    for name in MODULES:
        _layer(name)


def test_imports_run_one_way() -> None:
    upward = [f"{name} -> {target}" for name, targets in GRAPH.items() for target in targets
              if _layer(target) > _layer(name)
              and not (_folder(target) == "" and _layer(name) >= LAYERS.index(("", "container",
                                                                                "gpu")))]
    assert not upward, "imports from a higher layer:\n" + "\n".join(sorted(upward))


def test_root_package_is_imported_only_from_above_spec() -> None:
    """The public API reaches into spec/ and config/: below them it would be a cycle."""
    spec = LAYERS.index(("spec",))
    low = [name for name, targets in GRAPH.items()
           if "glidein_plugins" in targets and _layer(name) <= spec]
    assert not low, f"import the defining module instead of glidein_plugins: {low}"


def test_only_the_engine_imports_builtin_plugins() -> None:
    offenders = [f"{name} -> {target}" for name, targets in GRAPH.items() for target in targets
                 if _folder(target) in PLUGIN_FOLDERS and _folder(name) != "engine"
                 and not _is_private_helper(name, target)]
    assert not offenders, "plugins are loaded by the engine, never imported:\n" + "\n".join(
        sorted(offenders))


def _is_private_helper(name: str, target: str) -> bool:
    """A plugin folder's private module (``vo._common``), shared by the plugins beside it."""
    return (_folder(name) == _folder(target)
            and target.rpartition(".")[2].startswith("_"))


def test_no_import_cycle() -> None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for target in sorted(GRAPH[name]):
            if state.get(target) == 1:
                cycle = [*path[path.index(target):], target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_size(name: str) -> None:
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name].relative_to(ROOT)}: {lines} lines"


def test_vo_plugins_and_readme_use_only_the_public_api() -> None:
    """The reference VO plugins are what a VO developer copies: they import ``glidein_plugins``
    (its ``__all__``) and the documented libraries, never an internal module."""
    public = ("glidein_plugins", "glidein_plugins.container", "glidein_plugins.gpu")
    offenders = [f"{name} -> {target}" for name, targets in GRAPH.items()
                 if _folder(name) == "vo" for target in targets
                 if not (target in public or target.startswith(tuple(f"{p}." for p in public[1:]))
                         or _folder(target) == "vo")]
    assert not offenders, "\n".join(offenders)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for line in readme.splitlines():
        if line.startswith(("from glidein_plugins", "import glidein_plugins")):
            assert line.startswith("from glidein_plugins import "), line
