"""Build a fresh plugin manager for one run: built-ins, entry-point plugins, site drop-ins, the
entry's enable/disable lists, then ``check_pending()``. A broken third-party plugin is reported
with its distribution and skipped, unless the entry requires it."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import pluggy

from glidein_plugins import hookspecs
from glidein_plugins.builtin import BUILTINS
from glidein_plugins.factory_config import EntryConfig

ENTRY_POINT_GROUP = "glidein_plugins"
DISABLE_ENV = "GLIDEIN_PLUGINS_DISABLE"  # comma/space separated names to block
_HOOK_PREFIX = "glidein_"


@dataclass(frozen=True)
class PluginInfo:
    """A registered plugin: its name, where it came from, and its distribution."""

    name: str
    source: str  # builtin | entry point | directory
    distribution: str
    version: str = ""
    location: str = ""

    @property
    def label(self) -> str:
        """``name (distribution version)`` for messages."""
        version = f" {self.version}" if self.version else ""
        return f"{self.name} ({self.distribution}{version})"


@dataclass(frozen=True)
class LoadProblem:
    """A plugin that could not be used, and whether that stops the glidein."""

    name: str
    distribution: str
    message: str
    fatal: bool

    def __str__(self) -> str:
        return f"plugin {self.name} ({self.distribution}): {self.message}"


@dataclass
class Plugins:
    """The manager for this run, what is registered, and what was skipped or blocked."""

    manager: pluggy.PluginManager
    info: Dict[str, PluginInfo] = field(default_factory=dict)
    problems: List[LoadProblem] = field(default_factory=list)
    blocked: Tuple[str, ...] = ()
    required: Tuple[str, ...] = ()

    def describe(self, name: str) -> str:
        info = self.info.get(name)
        return info.label if info else name


class _Manager(pluggy.PluginManager):
    """Treats every ``glidein_*`` function as a hook implementation, marked or not, so that a
    misspelt hook name is caught by ``check_pending()`` instead of silently never running."""

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Optional[Any]:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith(_HOOK_PREFIX):
            method = getattr(plugin, name, None)
            if inspect.isroutine(method):
                return {}
        return opts


def entry_points() -> Dict[str, Tuple[metadata.EntryPoint, str, str]]:
    """``name -> (entry point, distribution, version)`` for the ``glidein_plugins`` group."""
    found: Dict[str, Tuple[metadata.EntryPoint, str, str]] = {}
    for dist in metadata.distributions():
        for point in dist.entry_points:
            if point.group == ENTRY_POINT_GROUP:
                found.setdefault(point.name, (point, dist.metadata["Name"], dist.version))
    return found


def drop_ins(directories: Tuple[str, ...]) -> Dict[str, Path]:
    """``name -> file`` for every ``*.py`` module in the site's plugin directories."""
    found: Dict[str, Path] = {}
    for directory in directories:
        for path in sorted(Path(directory).glob("*.py")):
            if not path.name.startswith("_"):
                found.setdefault(path.stem, path)
    return found


def blocked_names(entry: EntryConfig, environ: Mapping[str, str]) -> Tuple[str, ...]:
    from_env = re.split(r"[,\s]+", environ.get(DISABLE_ENV, "").strip())
    return tuple(dict.fromkeys(name for name in (*entry.disable, *from_env) if name))


def build(entry: EntryConfig, environ: Mapping[str, str]) -> Plugins:
    """A new manager for ``entry``: never a global one, so every run starts clean."""
    pm = _Manager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    plugins = Plugins(pm, blocked=blocked_names(entry, environ), required=entry.required)
    for name in plugins.blocked:
        pm.set_blocked(name)
        if name in entry.required:
            plugins.problems.append(LoadProblem(name, "?", "required but disabled", fatal=True))

    wanted = [name for name, (_, on) in BUILTINS.items() if on]
    wanted += [name for name in (*entry.enable, *entry.required) if name not in wanted]
    site = drop_ins(entry.directories)
    wanted += [name for name in site if name not in wanted]
    points: Optional[Dict[str, Tuple[metadata.EntryPoint, str, str]]] = None

    for name in wanted:
        if name in plugins.blocked:
            continue
        fatal = name in entry.required
        if name in BUILTINS:
            info = PluginInfo(name, "builtin", hookspecs.PROJECT, location=BUILTINS[name][0])
            _register(plugins, info, lambda n=name: importlib.import_module(BUILTINS[n][0]), fatal)
        elif name in site:
            info = PluginInfo(name, "directory", "site", location=str(site[name]))
            _register(plugins, info, lambda p=site[name]: _load_file(p), fatal)
        else:
            if points is None:
                points = entry_points()  # scanned only when a non-built-in plugin is wanted
            if name not in points:
                plugins.problems.append(LoadProblem(
                    name, "?", "unknown plugin: not built in, not an installed "
                    f"'{ENTRY_POINT_GROUP}' entry point, not in a plugin directory", fatal))
                continue
            point, dist, version = points[name]
            info = PluginInfo(name, "entry point", dist, version, location=point.value)
            _register(plugins, info, point.load, fatal)
    pm.check_pending()
    return plugins


def _load_file(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"glidein_plugins_site_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _register(plugins: Plugins, info: PluginInfo, load: Any, fatal: bool) -> None:
    """Load and register one plugin; any failure becomes a LoadProblem naming it."""
    try:
        plugin = load()
        if isinstance(plugin, type):
            plugin = plugin()  # a class entry point: use an instance
        plugins.manager.register(plugin, name=info.name)
    except (Exception, SystemExit) as exc:  # a broken plugin must not take the glidein down
        plugins.problems.append(
            LoadProblem(info.name, info.distribution, f"failed to load: {_describe(exc)}", fatal))
        return
    problem = _validate(plugins.manager, plugin)
    if problem:
        plugins.manager.unregister(plugin)
        plugins.problems.append(LoadProblem(info.name, info.distribution, problem, fatal))
        return
    plugins.info[info.name] = info


def _validate(pm: pluggy.PluginManager, plugin: Any) -> str:
    """Why ``plugin`` cannot be used ('' if it can): unknown hooks, wrappers."""
    for caller in pm.get_hookcallers(plugin) or []:
        for impl in caller.get_hookimpls():
            if impl.plugin is not plugin:
                continue
            if caller.spec is None:
                return (f"implements unknown hook {caller.name!r} (misspelt? known hooks: "
                        f"{', '.join(known_hooks())})")
            if impl.hookwrapper or impl.wrapper:
                return f"{caller.name}: hook wrappers are not supported"
    return ""


def known_hooks() -> List[str]:
    """Hook names in phase order."""
    return [name for name, obj in vars(hookspecs).items()
            if name.startswith(_HOOK_PREFIX) and inspect.isfunction(obj)]


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
