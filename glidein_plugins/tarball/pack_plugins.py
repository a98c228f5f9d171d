"""The VO plugins ``pack`` puts into the tarball: every entry-point plugin an entry enables.

Each enabled plugin that is not built in must be an installed ``glidein_plugins`` entry point
whose distribution can run on a worker node: pure Python, Python 3.9, nothing required beyond
what the tarball ships. Its package files go in as installed, with its ``*.dist-info/METADATA``
and ``entry_points.txt`` (so that the node finds the entry point exactly as pip would) and its
licence under ``licenses/``. A plugin that cannot ship stops ``pack``, naming it and why,
unless every entry that names it marks it ``optional``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from glidein_plugins.config.model import FactoryConfig
from glidein_plugins.engine.manager import entry_points
from glidein_plugins.engine.registry import BUILTINS
from glidein_plugins.tarball.vendor import LICENSE, normal_name

COMPILED = (".so", ".pyd", ".dylib", ".dll")
# what a shipped plugin may require: the tarball holds these (psutil is optional everywhere)
PROVIDED = {"glidein_plugins", "pluggy", "pyyaml", "psutil"}
TARBALL_NAMES = {"glidein_plugins", "hooks", "factory_configs", "pluggy", "yaml", "licenses",
                 "VERSION", "MANIFEST"}


class CannotShip(Exception):
    """An enabled plugin cannot go into the tarball."""


@dataclass(frozen=True)
class Shipped:
    """A plugin distribution put into the tarball."""

    plugins: tuple[str, ...]
    distribution: str
    version: str
    license: str
    files: dict[str, Path]  # tarball path -> installed file

    @property
    def line(self) -> str:
        """Its line in VERSION."""
        return (f"{self.distribution} {self.version} {self.license} "
                f"plugins={','.join(self.plugins)}")


@dataclass(frozen=True)
class Collected:
    """What ``collect`` found: the distributions to ship, and notes for the operator."""

    shipped: tuple[Shipped, ...]
    notes: tuple[str, ...]


def enabled(config: FactoryConfig) -> dict[str, tuple[str, bool]]:
    """``name -> (where first named, optional)`` of every non-built-in plugin that an entry
    (or the defaults) enables, requires or marks optional; optional only when every entry
    that loads it marks it so."""
    found: dict[str, tuple[str, bool]] = {}
    for entry in ["", *config.entries]:  # "": an entry with no section of its own
        lists = config.merged(entry).lists
        optional = {item.value for item in lists["optional"]} - {
            item.value for item in lists["required"]}
        for item in (*lists["enable"], *lists["required"], *lists["optional"]):
            if item.value not in BUILTINS:
                where, was_optional = found.get(item.value, (item.where, True))
                found[item.value] = (where, was_optional and item.value in optional)
    return found


def collect(config: FactoryConfig) -> Collected:
    """The distributions of every enabled entry-point plugin; CannotShip for the first that
    cannot go (a non-optional one), naming it, where it is enabled, and why."""
    wanted = enabled(config)
    if not wanted:
        return Collected((), ())
    points = entry_points()
    by_dist: dict[str, list[str]] = {}
    notes = []
    for name, (where, optional) in wanted.items():
        if name not in points:
            why = ("not installed: no 'glidein_plugins' entry point of that name (pip install "
                   "its distribution where pack runs)")
            if config.directories():
                notes.append(f"plugin {name} ({where}): {why}; expected in a drop-in "
                             "directory on the node")
            elif optional:
                notes.append(f"plugin {name} ({where}): {why}; optional, left out")
            else:
                raise CannotShip(f"plugin {name} ({where}): {why}")
            continue
        by_dist.setdefault(points[name][1], []).append(name)
    shipped = []
    for dist_name, plugins in by_dist.items():
        try:
            shipped.append(_distribution(dist_name, tuple(sorted(plugins))))
        except CannotShip as exc:
            names = ", ".join(plugins)
            if all(wanted[name][1] for name in plugins):
                notes.append(f"plugin {names}: {exc}; optional, left out")
            else:
                raise CannotShip(f"plugin {names} ({wanted[plugins[0]][0]}): {exc}") from None
    return Collected(tuple(shipped), tuple(notes))


def _distribution(name: str, plugins: tuple[str, ...]) -> Shipped:
    """One installed distribution's shippable files, or CannotShip saying why not."""
    dist = _installed(name)
    label = f"{name} {dist.version}"
    floor = re.search(r">=\s*3\.(\d+)", dist.metadata.get("Requires-Python") or "")
    if floor and int(floor.group(1)) > 9:
        raise CannotShip(f"{label} needs Python 3.{floor.group(1)} or newer; worker nodes "
                         "may have Python 3.9")
    extra = sorted({_requirement_name(req) for req in dist.requires or ()
                    if "extra ==" not in req} - PROVIDED)
    if extra:
        raise CannotShip(f"{label} requires {', '.join(extra)}, which the tarball does not "
                         "ship (a plugin may use only glidein_plugins, pluggy, PyYAML, psutil)")
    files: dict[str, Path] = {}
    info_dir = ""
    for item in dist.files or ():
        path = item.as_posix()
        if path.startswith("..") or "__pycache__/" in path or path.endswith((".pyc", ".pyo")):
            continue  # scripts outside site-packages, caches
        if path.endswith(COMPILED):
            raise CannotShip(f"{label} has compiled code ({path}): only pure Python ships")
        top, _, rest = path.partition("/")
        if top.endswith(".dist-info"):
            info_dir = top
            if rest in ("METADATA", "entry_points.txt"):
                files[path] = Path(str(item.locate()))
            elif LICENSE.search(item.name):
                files[f"licenses/{name}-{item.name}"] = Path(str(item.locate()))
            continue
        if top.removesuffix(".py") in TARBALL_NAMES:
            raise CannotShip(f"{label} installs {top}, which would replace the tarball's own")
        files[path] = Path(str(item.locate()))
    if not info_dir or f"{info_dir}/entry_points.txt" not in files:
        raise CannotShip(f"{label}: no installed file list (RECORD) with its entry points")
    license = " ".join((dist.metadata.get("License-Expression") or dist.metadata.get("License")
                        or "unknown").split()) or "unknown"
    return Shipped(plugins, name, dist.version, license.replace(" ", "_"), files)


def _installed(name: str) -> metadata.Distribution:
    """The installed distribution of that name (its dist-info folder may spell it otherwise)."""
    try:
        return metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return next(dist for dist in metadata.distributions() if dist.metadata["Name"] == name)


def _requirement_name(requirement: str) -> str:
    return normal_name(re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0])
