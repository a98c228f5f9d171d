"""Run the setup phases in-process for a plugin under test, as a glidein would run them."""

from __future__ import annotations

import types
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from glidein_plugins.testing.glidein import make_work_dir
from glidein_plugins.testing.node import NO_GPU_DETECTION, RUNTIME_ENV_KEYS, SAFE_PATH

if TYPE_CHECKING:
    from glidein_plugins.engine.manager import LoadProblem
    from glidein_plugins.engine.runner import SetupReport

PluginSpec = Union[types.ModuleType, str, Path]


class PluginLoadError(AssertionError):
    """The plugin under test could not be loaded (the problems say why)."""

    def __init__(self, problems: list[LoadProblem]) -> None:
        super().__init__("; ".join(map(str, problems)))
        self.problems = problems


def bare_environ(**values: str) -> dict[str, str]:
    """A node with nothing on it: PATH the system dirs, every runtime input blank, GPU detection
    off (``NO_GPU_DETECTION``); ``values`` add or replace keys (pass ``fake_runtime.env()``'s
    result to run against a fake runtime)."""
    return {**dict.fromkeys(RUNTIME_ENV_KEYS, ""), "PATH": SAFE_PATH, **NO_GPU_DETECTION,
            **values}


def run_phases(plugin: PluginSpec, work_dir: Path, *,
               glidein_config: str | Mapping[str, str] | None = None,
               environ: Mapping[str, str] | None = None,
               settings: Mapping[str, Any] | None = None,
               attributes: Mapping[str, Any] | None = None,
               required: bool = False, name: str | None = None,
               budget: float = 60.0) -> SetupReport:
    """Run every setup phase in-process with ``plugin`` enabled for the entry; the SetupReport.

    ``plugin`` is a module object (registered as ``name``, default: the module's last dotted
    part), a ``.py`` file or a directory of them (a site plugin directory), or the name of an
    installed ``glidein_plugins`` entry point. ``glidein_config`` is the file's text, or values
    for ``make_work_dir`` (default: ``work_dir``'s existing glidein_config, made if missing);
    ``settings`` are the entry's settings for the plugin, ``attributes`` the entry's
    attributes; ``environ`` defaults to ``bare_environ()``. The plugin is ``required`` or just
    enabled. Nothing is published: check ``report.attributes``, ``report.facts``,
    ``report.failure`` and ``report.trace``. Raises PluginLoadError when the plugin under test
    cannot be loaded (a problem naming another plugin is in the trace).
    """
    from glidein_plugins.config.model import EntryConfig, Setting  # noqa: PLC0415
    from glidein_plugins.engine import manager  # noqa: PLC0415
    from glidein_plugins.engine.runner import Runner  # noqa: PLC0415
    from glidein_plugins.protocol.glideinwms import glidein_config as gconfig  # noqa: PLC0415 - kept lazy
    from glidein_plugins.spec.context import Context, Deadline  # noqa: PLC0415

    config_path = work_dir / "glidein_config"
    if isinstance(glidein_config, str):
        work_dir.mkdir(parents=True, exist_ok=True)
        config_path.write_text(glidein_config)
    elif glidein_config is not None or not config_path.is_file():
        make_work_dir(work_dir, glidein_config)
    values = gconfig.read(config_path)

    module: types.ModuleType | None = None
    directories: tuple[str, ...] = ()
    if isinstance(plugin, types.ModuleType):
        module, name = plugin, name or plugin.__name__.rpartition(".")[2]
    elif isinstance(plugin, Path):
        directories = (str(plugin if plugin.is_dir() else plugin.parent),)
        name = name or (plugin.stem if plugin.is_file() else None)
    else:
        name = name or plugin
    if name is None:
        raise ValueError(f"{plugin}: a plugin directory needs the plugin's name (name=...)")

    where = "run_phases"
    listed = () if module is not None or (directories and not required) else (name,)
    entry = EntryConfig(
        name=values.get("GLIDEIN_Entry_Name") or "TEST_ENTRY", budget_seconds=budget,
        enable=() if required else listed, required=listed if required else (),
        directories=directories,
        attributes={key: Setting(value, where) for key, value in (attributes or {}).items()},
        settings={name: {key: Setting(value, where)
                         for key, value in (settings or {}).items()}})
    env = dict(bare_environ() if environ is None else environ)
    plugins = manager.build(entry, env)
    if module is not None:
        info = manager.PluginInfo(name, "module", module.__name__, location=module.__name__)
        manager._register(plugins, info, lambda: module, required)
        plugins.manager.check_pending()
    mine = [problem for problem in plugins.problems if problem.name == name]
    if mine or (name not in plugins.info):
        raise PluginLoadError(mine or [manager.LoadProblem(
            name, "?", "not registered (disabled? a file of the directory?)", required)])
    context = Context(entry, values, work_dir, Deadline(budget), env)
    return Runner(plugins, context).setup()
