"""HTCondor-native container mode configured at setup: the knobs ``jobstart.native.build``
computes for what the phases found, written into glidein_config and condor_vars.lst (or an
earlier run's emptied), and ``GLIDEIN_CONTAINER_LAUNCH`` published (``session.run_setup``
calls ``write_config`` after the phases, before the attributes are published).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from glidein_plugins.container import images
from glidein_plugins.errors import ConfigError, Failure, GlideinFailure
from glidein_plugins.jobstart.native import (
    KNOBS,
    LAUNCH_ATTRIBUTE,
    PLUGIN,
    SETTING,
    NativeConfig,
    NotPossible,
    build,
)
from glidein_plugins.jobstart.settings import settings as launch_settings
from glidein_plugins.protocol.glideinwms import advertise, condor_vars
from glidein_plugins.spec.results import Attribute, AttrType, TraceEvent

if TYPE_CHECKING:
    from glidein_plugins.engine.runner import SetupReport
    from glidein_plugins.spec.context import Context

_TRACE = ("launch", "native")  # (phase, plugin) of our trace lines



def write_config(context: Context, report: SetupReport) -> None:
    """Configure (or unconfigure) the HTCondor-native launch, after the phases and before the
    attributes are published (``session.run_setup``); nothing after a failure.

    With a proven runtime, ``GLIDEIN_CONTAINER_LAUNCH`` joins the attributes to publish:
    ``native`` when the entry asks for it and it can be configured, else ``wrapper``, with the
    reason in the trace. Knobs of an earlier run that are not wanted now are emptied. A wrong
    ``launch`` setting fails the setup (``Config``, naming file:line and the key); a write that
    fails leaves both files as they were and says so in the trace (the wrapper then starts the
    containers).
    """
    if report.failure is not None:
        return

    def note(message: str, level: str = "info") -> None:
        report.trace.append(TraceEvent(*_TRACE, message, level))

    try:
        chosen = launch_settings(context.entry)
    except GlideinFailure as exc:
        report.failure = Failure(exc.failure_type, exc.message)
        note(exc.message, "error")
        return
    wanted = bool(chosen[SETTING])
    facts = report.facts
    config: NativeConfig | None = None
    launch = ""
    if facts.has_singularity and facts.runtime is not None:
        launch = "wrapper"
        if not wanted:
            note("jobs are started in their container by the job wrapper "
                 f"(settings.{PLUGIN}.{SETTING} is not true)")
        else:
            try:
                config = build(facts, images.restrictions(context), context.cvmfs_root,
                               chosen["extra_options"], chosen["pid_namespaces"])
            except (NotPossible, GlideinFailure, ValueError) as exc:
                note(f"HTCondor-native container launch not possible: {exc}; the job wrapper "
                     "starts the containers", "warning")
    elif wanted:
        note("HTCondor-native container launch not configured: no proven runtime and usable "
             "image", "warning")
    try:
        _write(context, config, clear_launch=not launch)
    except (ConfigError, ValueError) as exc:
        note(f"HTCondor-native configuration not written: {exc}", "warning")
        config = None
    if config is not None:
        launch = "native"
        note("HTCondor launches the job containers (no wrapper): "
             + "; ".join(f"{name} = {value}" for name, value in config.knobs.items()))
        for message in config.notes:
            note(message, "warning")
    if launch:
        report.attributes = (*report.attributes,
                             Attribute(LAUNCH_ATTRIBUTE, launch, AttrType.STRING, "native"))


def _write(context: Context, config: NativeConfig | None, clear_launch: bool) -> None:
    """Write the knobs, or empty those of an earlier run (and its ``GLIDEIN_CONTAINER_LAUNCH``
    when ``clear_launch``): condor_vars.lst then glidein_config, each once, everything
    validated first; should glidein_config fail, condor_vars.lst is put back."""
    values = context.glidein_config
    vars_path = advertise.vars_file(values, context.work_dir)
    listed = set(condor_vars.read_names(vars_path))
    lines: list[condor_vars.VarLine] = []
    if config is not None:
        lines = [condor_vars.VarLine(name, "C", export=False, job_env="-")
                 for name in config.knobs]
        changes = dict(config.knobs)
    else:  # an earlier run's values are emptied: condor_startup.sh then skips the names
        changes = {name: "" for name in KNOBS if name in listed}
    if clear_launch and LAUNCH_ATTRIBUTE in listed:
        changes[LAUNCH_ATTRIBUTE] = ""
    if changes:
        advertise.write(values, vars_path, lines, changes)
