"""Job start with plugins: the invocation from the job-start plugins setup found
(``SetupState.job_hooks``) and the built-in ``launch``, no other, through the engine.

Imported by ``runs.job`` only when the state lists such plugins: the common job start never
imports pluggy, YAML or the engine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from glidein_plugins.config import factory_config
from glidein_plugins.engine import manager
from glidein_plugins.engine.calls import Stop
from glidein_plugins.engine.registry import BUILTINS
from glidein_plugins.engine.runner import Runner
from glidein_plugins.jobstart import launch, launch_env
from glidein_plugins.jobstart.plan import WrapFailure
from glidein_plugins.jobstart.records import SetupState
from glidein_plugins.jobstart.report import number
from glidein_plugins.jobstart.settings import PLUGIN as LAUNCH_PLUGIN
from glidein_plugins.jobstart.settings import STATE_KEY
from glidein_plugins.protocol.glideinwms import glidein_config
from glidein_plugins.spec import results
from glidein_plugins.spec.context import Context, Deadline

DEFAULT_BUDGET = 60.0  # the launch setting plugin_budget's default


def build_with_plugins(state: SetupState, job: launch.JobRequest, environ: Mapping[str, str],
                       package_dir: str) -> launch.Invocation | launch.Refusal:
    """The invocation from ``state.job_hooks`` and the built-in ``launch``, no other: VO
    plugins are asked first (``Runner.call_first``, as ``Runner.invocation`` does, keeping
    which plugin answered: the built-in gives the runtime's whole environment, a VO plugin
    extra variables over the job's). The entry's configuration is ``package_dir``'s
    ``factory_configs`` (as the setup hook loads it); nothing comes from the job's environment
    (``GLIDEIN_PLUGINS_DISABLE``, ``GLIDEIN_PLUGINS_CONFIG_DIR``). A plugin that raises, or one
    setup found that is not there now, stops the job, PREFERRED or not."""
    config_dir = Path(package_dir, "factory_configs")
    hooks = state.job_hooks
    try:
        entry = factory_config.load(sorted(config_dir.glob("*.yaml"))).entry(state.entry)
        values = glidein_config.read(Path(state.work_dir or ".") / "glidein_config")
    except ValueError as exc:
        raise WrapFailure(f"the job plugins ({', '.join(hooks)}) cannot be set up: "
                          f"{exc}") from None
    # only what setup found implementing the hook, and the built-in: every other plugin of the
    # entry (built-ins included) is blocked, so never even imported
    keep = {LAUNCH_PLUGIN, *hooks}
    # the engine's table of built-ins (it should export its names: engine helper)
    builtins = BUILTINS
    others = (set(builtins) | set(entry.enable) | set(entry.required)
              | set(manager.drop_ins(entry.directories))) - keep
    entry = dataclasses.replace(entry, disable=(*entry.disable, *sorted(others)),
                                required=tuple(name for name in entry.required if name in keep))
    budget = number(state.setting("plugin_budget"), DEFAULT_BUDGET)
    context = Context(entry, values, Path(state.work_dir or "."), Deadline(budget),
                      dict(environ))
    context.state(LAUNCH_PLUGIN)[STATE_KEY] = state  # loaded once
    request = results.JobRequest(job.argv, job.job_ad, job.machine_ad, job.cwd)
    plugins = manager.build(entry, {})  # the job's GLIDEIN_PLUGINS_DISABLE is not read
    problems = {problem.name for problem in plugins.problems}
    gone = [name for name in hooks if name not in plugins.info and name not in problems]
    fatal = [str(problem) for problem in plugins.problems if problem.fatal]
    fatal += [f"{name}: the job-start plugin setup found is not enabled in "
              f"{config_dir}" for name in gone]
    if fatal:  # a plugin the entry requires, or setup ran, is missing: no job starts without it
        return launch.Refusal("; ".join(fatal))
    try:
        found = Runner(plugins, context).call_first(
            "glidein_job_launch", context=context, facts=state.facts(), job=request)
    except Stop as stop:  # a plugin refused the job, crashed or overran: it must not start
        return launch.Refusal(stop.failure.message)
    warnings = [str(problem) for problem in plugins.problems]
    warnings += [event.message for event in context.trace if event.level != "info"]
    notes = [event.message for event in context.trace if event.level == "info"]
    if found is None:  # the built-in refused (it says why), or none is enabled
        built = launch.build(state, job, environ)
        if isinstance(built, launch.Refusal):
            return built
        return launch.Refusal(f"no enabled plugin built a container invocation (plugins: "
                              f"{', '.join(hooks)}; is the built-in "
                              f"{LAUNCH_PLUGIN} disabled?)", notes=notes)
    plugin, invocation = found
    if plugin == LAUNCH_PLUGIN:  # launch.build's: the whole environment
        env = dict(invocation.env)
    else:  # a VO plugin's: extra variables over the job's environment, as launch.build does
        env = {name: value for name, value in environ.items()
               if not launch_env.runtime_variable(name) and not launch_env.is_function(name)}
        env["PATH"] = launch_env.CLEAN_PATH
        env.update(invocation.env)
    return launch.Invocation(invocation.argv, env, invocation.image, warnings, notes)
