"""Build a fresh plugin manager for one run: built-ins, entry-point plugins, site drop-ins, the
entry's enable/disable lists, then ``check_pending()``. A broken third-party plugin is reported
with its distribution and skipped, unless the entry requires it."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from glidein_plugins.config.model import EntryConfig
from glidein_plugins.engine.registry import BUILTINS
from glidein_plugins.spec import hookspecs

if TYPE_CHECKING:  # imported when entry points are scanned: costly, rarely needed
    from importlib import metadata

ENTRY_POINT_GROUP = "glidein_plugins"
DISABLE_ENV = "GLIDEIN_PLUGINS_DISABLE"  # comma/space separated names to block
_HOOK_PREFIX = "glidein_"
_GROUP_OTHERS = stat.S_IWGRP | stat.S_IWOTH
_ST_RDONLY = getattr(os, "ST_RDONLY", 1)  # Linux's value (PyPy 3.9's os lacks the name)


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
    info: dict[str, PluginInfo] = field(default_factory=dict)
    problems: list[LoadProblem] = field(default_factory=list)
    blocked: tuple[str, ...] = ()
    required: tuple[str, ...] = ()

    def describe(self, name: str) -> str:
        info = self.info.get(name)
        return info.label if info else name


class _Manager(pluggy.PluginManager):
    """Treats every ``glidein_*`` function as a hook implementation, marked or not, so that a
    misspelt hook name is caught by ``check_pending()`` instead of silently never running."""

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any | None:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith(_HOOK_PREFIX):
            method = getattr(plugin, name, None)
            if inspect.isroutine(method):
                return {}
        return opts


def entry_points() -> dict[str, tuple[metadata.EntryPoint, str, str]]:
    """``name -> (entry point, distribution, version)`` for the ``glidein_plugins`` group."""
    return _scan_entry_points()[0]


def _scan_entry_points() -> tuple[dict[str, tuple[metadata.EntryPoint, str, str]],
                                  list[LoadProblem]]:
    """The group's entry points, and a problem for each distribution whose metadata is
    unreadable (one broken distribution must not hide the others' plugins)."""
    from importlib import metadata  # noqa: PLC0415 - slow; only when a plugin needs it

    found: dict[str, tuple[metadata.EntryPoint, str, str]] = {}
    problems: list[LoadProblem] = []
    for dist in metadata.distributions():
        try:
            name = dist.metadata["Name"] or "?"  # broken metadata: still report the plugin
            points = [point for point in dist.entry_points if point.group == ENTRY_POINT_GROUP]
            version = dist.version or ""
        except Exception as exc:
            where = getattr(dist, "_path", "?")
            problems.append(LoadProblem(str(where), "?", "unreadable distribution metadata: "
                                        f"{_describe(exc)}", fatal=False))
            continue
        for point in points:
            found.setdefault(point.name, (point, name, version))
    return found, problems


def drop_ins(directories: tuple[str, ...]) -> dict[str, Path]:
    """``name -> file`` for every ``*.py`` module in the site's plugin directories."""
    found: dict[str, Path] = {}
    for directory in directories:
        for path in sorted(Path(directory).glob("*.py")):
            if not path.name.startswith("_"):
                found.setdefault(path.stem, path)
    return found


def unsafe(path: Path) -> str:
    """Why the drop-in ``path`` (a plugin directory or ``*.py`` file) must not be loaded; ''
    when it may.

    Symlinks are followed. The file and the directory holding it must be owned by root or this
    user and writable by their owner only; every directory above must not be writable by group
    or others unless it has the sticky bit (``/tmp``): else someone else could change the code
    the pilot runs. Nothing on a read-only mount (CVMFS) can change, whoever owns it.
    """
    try:
        real = Path(os.path.realpath(path))
        folder = real if real.is_dir() else real.parent
        for item in dict.fromkeys((real, folder)):  # once when ``path`` is a directory
            why = _not_private(item)
            if why:
                return why
        for parent in folder.parents:
            mode = parent.stat().st_mode
            if mode & _GROUP_OTHERS and not mode & stat.S_ISVTX and not _read_only(parent):
                return (f"{parent} is writable by {_who(mode)} (mode {mode & 0o7777:04o}) "
                        f"without the sticky bit: they could replace {folder}")
    except OSError as exc:
        return f"cannot check {exc.filename or path}: {exc.strerror or exc}"
    return ""


def _not_private(path: Path) -> str:
    """Why ``path`` could be changed by someone else than root or this user ('' if not)."""
    info = path.stat()
    if _read_only(path):
        return ""
    user = os.geteuid()
    if info.st_uid not in (0, user):
        return (f"{path} is owned by uid {info.st_uid}, neither root nor this user "
                f"(uid {user})")
    if info.st_mode & _GROUP_OTHERS:
        return (f"{path} is writable by {_who(info.st_mode)} (mode "
                f"{info.st_mode & 0o7777:04o}); only its owner may write it (chmod go-w)")
    return ""


def _who(mode: int) -> str:
    return " and ".join(who for who, bit in (("its group", stat.S_IWGRP), ("others", stat.S_IWOTH))
                        if mode & bit)


def _read_only(path: Path) -> bool:
    return bool(os.statvfs(path).f_flag & _ST_RDONLY)


def blocked_names(entry: EntryConfig, environ: Mapping[str, str]) -> tuple[str, ...]:
    """The entry's ``disable`` list, then the names in ``$GLIDEIN_PLUGINS_DISABLE``."""
    from_env = re.split(r"[,\s]+", environ.get(DISABLE_ENV, "").strip())
    return tuple(dict.fromkeys(name for name in (*entry.disable, *from_env) if name))


def build(entry: EntryConfig, environ: Mapping[str, str]) -> Plugins:
    """A new manager for ``entry``: never a global one, so every run starts clean.

    Built-ins are registered under short names (``mode``, ``singularity``); names in the
    entry's ``disable`` list or ``$GLIDEIN_PLUGINS_DISABLE`` are blocked; ``enable``,
    ``required`` and ``optional`` load entry-point plugins; every ``*.py`` in ``directories`` is
    loaded, unless it or its directory could be changed by someone else (``unsafe``). What
    cannot be loaded is in ``problems``: fatal for a plugin the entry names (``enable``,
    ``required``) unless it also marks it ``optional``; a warning for the others.
    """
    pm = _Manager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    plugins = Plugins(pm, blocked=blocked_names(entry, environ), required=entry.required)
    for name in plugins.blocked:
        pm.set_blocked(name)
        if name in entry.required:
            plugins.problems.append(LoadProblem(name, "?", "required but disabled", fatal=True))

    for directory in entry.directories:
        if not Path(directory).is_dir():
            plugins.problems.append(LoadProblem(
                Path(directory).name, "site", f"plugin directory {directory} does not exist",
                fatal=False))
    site = drop_ins(entry.directories)
    for name in sorted(set(site) & set(BUILTINS)):
        plugins.problems.append(LoadProblem(
            name, "site", f"{site.pop(name)} ignored: '{name}' is a built-in plugin's name; "
            "rename the file (and disable the built-in to replace it)", fatal=False))
    # registration order, which sets the call order (pluggy calls the last registered first):
    # built-ins, then entry points in the entry's order, then drop-ins in directory order.
    # Whether a plugin is required changes what its failure means, never when it is called.
    wanted = [name for name, (_, on) in BUILTINS.items() if on]
    named = (*entry.enable, *entry.required, *entry.optional)
    wanted += [name for name in dict.fromkeys(named) if name not in wanted and name not in site]
    wanted += [name for name in site if name not in wanted]
    points: dict[str, tuple[metadata.EntryPoint, str, str]] | None = None
    checked: dict[Path, str] = {}  # directory -> why it is unsafe ('' if it is not)

    for name in wanted:
        if name in plugins.blocked:
            continue
        fatal = name in entry.required or (name in entry.enable and name not in entry.optional)
        if name in BUILTINS:
            info = PluginInfo(name, "builtin", hookspecs.PROJECT, location=BUILTINS[name][0])
            _register(plugins, info, lambda n=name: importlib.import_module(BUILTINS[n][0]), fatal)
        elif name in site:
            path = site[name]
            why = _unsafe_directory(path.parent, checked) or unsafe(path)
            if why:
                plugins.problems.append(LoadProblem(name, "site", f"{path} not loaded: {why}",
                                                    fatal))
                continue
            info = PluginInfo(name, "directory", "site", location=str(path))
            _register(plugins, info, lambda p=path: _load_file(p), fatal)
        else:
            if points is None:  # scanned only when a non-built-in plugin is wanted
                points, unreadable = _scan_entry_points()
                plugins.problems += unreadable
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


def _unsafe_directory(directory: Path, checked: dict[Path, str]) -> str:
    """``unsafe(directory)``, looked at once per build (its files can be symlinks elsewhere)."""
    if directory not in checked:
        checked[directory] = unsafe(directory)
    return checked[directory]


def _load_file(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"glidein_plugins_site_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[spec.name]  # no half-imported module left behind
        raise
    return module


def _register(plugins: Plugins, info: PluginInfo, load: Any, fatal: bool) -> None:
    """Load and register one plugin; any failure becomes a LoadProblem naming it."""
    pm = plugins.manager
    plugin: Any = None
    try:
        plugin = load()
        if isinstance(plugin, type):
            plugin = plugin()  # a class entry point: use an instance
        pm.register(plugin, name=info.name)
    except (Exception, SystemExit) as exc:  # a broken plugin must not take the glidein down
        if plugin is not None and pm.get_plugin(info.name) is plugin:
            pm.unregister(plugin)  # pluggy leaves the hooks registered before the bad one
        plugins.problems.append(
            LoadProblem(info.name, info.distribution, f"failed to load: {_describe(exc)}", fatal))
        return
    problem = _validate(pm, plugin)
    if problem:
        pm.unregister(plugin)
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
                import difflib  # noqa: PLC0415 - only for this message

                close = difflib.get_close_matches(caller.name, known_hooks(), n=1)
                hint = f"did you mean {close[0]!r}?" if close else "misspelt?"
                return (f"implements unknown hook {caller.name!r} ({hint} known hooks: "
                        f"{', '.join(known_hooks())})")
            if impl.hookwrapper or impl.wrapper:
                return f"{caller.name}: hook wrappers are not supported"
    return ""


def known_hooks() -> list[str]:
    """Hook names in phase order."""
    return [name for name, obj in vars(hookspecs).items()
            if name.startswith(_HOOK_PREFIX) and inspect.isfunction(obj)]


def _describe(exc: BaseException) -> str:
    """``Type: message`` on one line (pluggy's validation messages span several lines)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
