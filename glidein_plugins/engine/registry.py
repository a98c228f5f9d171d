"""The built-in plugins by name, and what depends on that list: their settings declarations,
and the other plugins a factory config names.

``BUILTINS`` maps a name to its module and whether it runs unless an entry disables it
(``True``) or only when an entry enables it (``False``). Modules are imported only when used.
"""

from __future__ import annotations

import importlib
from typing import Any

from glidein_plugins.config.model import FactoryConfig
from glidein_plugins.config.options import Options, declared

BUILTINS: dict[str, tuple[str, bool]] = {
    "mode": ("glidein_plugins.builtin.mode", True),
    "images": ("glidein_plugins.builtin.images", True),
    "discovery": ("glidein_plugins.builtin.discovery", True),
    "probe": ("glidein_plugins.builtin.probe", True),
    "binds": ("glidein_plugins.builtin.binds", True),
    "cvmfs": ("glidein_plugins.builtin.cvmfs", True),
    "gpus": ("glidein_plugins.builtin.gpus", True),
    "singularity": ("glidein_plugins.builtin.singularity", True),
    "launch": ("glidein_plugins.builtin.launch", True),
    # the reference VO plugins: only on the entries that enable them
    "osg": ("glidein_plugins.vo.osg", False),
    "cms": ("glidein_plugins.vo.cms", False),
    "atlas": ("glidein_plugins.vo.atlas", False),
}


def builtin_declarations() -> dict[str, Options]:
    """``name -> Options`` of every built-in plugin (each imported)."""
    return {name: declared(importlib.import_module(module), builtin=True) or Options()
            for name, (module, _) in BUILTINS.items()}


def registered_declarations(manager: Any) -> dict[str, Options | None]:
    """``name -> Options`` (None: nothing declared) of every plugin registered in ``manager``
    (a pluggy PluginManager)."""
    return {name: declared(plugin, builtin=name in BUILTINS and
                           getattr(plugin, "__name__", "") == BUILTINS[name][0])
            for name, plugin in manager.list_name_plugin() if plugin is not None}


def other_plugins(config: FactoryConfig) -> dict[str, tuple[str, bool]]:
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
