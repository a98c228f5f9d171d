"""One setup run as GlideinWMS performs it: read glidein_config, load the entry's config, run the
phases, publish the attributes, and leave the result XML in the starting directory."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from glidein_plugins._where import INSTALL_DIR
from glidein_plugins.config import factory_config
from glidein_plugins.config.model import EntryConfig
from glidein_plugins.container.images import restrictions
from glidein_plugins.engine import manager
from glidein_plugins.engine.calls import tracer_from
from glidein_plugins.engine.runner import Runner, SetupReport
from glidein_plugins.errors import ConfigError, Failure, FailureType, GlideinFailure
from glidein_plugins.jobstart import native, setup_state
from glidein_plugins.jobstart.settings import PLUGIN as LAUNCH
from glidein_plugins.jobstart.settings import settings
from glidein_plugins.protocol.glideinwms import advertise, condor_vars, glidein_config, result_xml
from glidein_plugins.runs import native_config
from glidein_plugins.spec.context import Context, Deadline
from glidein_plugins.spec.results import Attribute, Facts, TraceEvent

ENTRY_KEY = "GLIDEIN_Entry_Name"


@dataclass(frozen=True)
class SetupOutcome:
    """A finished setup: the report and where the XML was written."""

    report: SetupReport
    entry: str
    xml_path: Path | None


PUBLISH_WAIT = 10.0  # seconds a lock on glidein_config is waited for, at least


def run_setup(
    config_path: Path,
    script_id: str = "entry",
    config_files: Sequence[Path] = (),
    start_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> SetupOutcome:
    """Run setup for the glidein_config at ``config_path`` (relative to ``start_dir``)."""
    start_dir = start_dir or Path.cwd()
    environ = dict(os.environ if environ is None else environ)
    path = config_path if config_path.is_absolute() else start_dir / config_path
    entry = ""
    try:
        values = glidein_config.read(path)
        glidein_config.check(values)  # the node's own input first, before any probe
        entry = values.get(ENTRY_KEY, "") or ""
        entry_config = factory_config.load(config_files).entry(entry)
        plugins = manager.build(entry_config, environ)
        check_entry(entry_config, plugins, values.values)
        context = Context(entry_config, values, start_dir, Deadline(entry_config.budget_seconds),
                          environ)
        if values.problems:
            context.record(TraceEvent("config", "glidein_config",
                                      glidein_config.summary(values.problems), "warning"))
        report = Runner(plugins, context, tracer_from(environ)).setup()
    except ConfigError as exc:
        report = SetupReport(Facts(), (), Failure(FailureType.CONFIG, str(exc)),
                             [TraceEvent("config", "-", str(exc), "error")])
    else:
        native_config.write_config(context, report)  # HTCondor-native launch knobs (or none)
        if report.failure is None:
            try:
                report.attributes = (*report.attributes,
                                     *save_state(context, plugins, report, start_dir))
            except GlideinFailure as exc:
                report.failure = Failure(exc.failure_type, exc.message)
                report.trace.append(TraceEvent("advertise", "-", exc.message, "error"))
                report.attributes = ()  # nothing is advertised
        if report.failure is None:
            try:
                publish(values, report.attributes, start_dir,
                        max(PUBLISH_WAIT, context.deadline.remaining()))
            except (ConfigError, ValueError) as exc:
                report.failure = Failure(FailureType.CONFIG, f"cannot publish attributes: {exc}")
                report.trace.append(TraceEvent("advertise", "-", str(exc), "error"))
                report.attributes = ()  # nothing was advertised
    if report.failure is not None:
        setup_state.forget(start_dir)  # no decision: the wrapper fails jobs rather than guess
    xml_path = _write_xml(start_dir, script_id, report)
    return SetupOutcome(report, entry, xml_path)


def check_entry(entry: EntryConfig, plugins: manager.Plugins,
                given: Mapping[str, str]) -> None:
    """The entry's configuration checked as ``check-config`` checks it, against the plugins
    registered for it (its ``attributes`` that glidein_config, ``given``, does not override);
    raises ConfigError naming every problem (file:line[:col], key, value)."""
    from glidein_plugins.engine import config_check, registry  # noqa: PLC0415

    problems = config_check.entry_problems(
        entry, registry.registered_declarations(plugins.manager), plugins.describe, given)
    if problems:
        raise ConfigError("", "; ".join(str(problem) for problem in problems))


def save_state(context: Context, plugins: manager.Plugins, report: SetupReport,
               start_dir: Path) -> tuple[Attribute, ...]:
    """Keep what job start needs, its decision included (``container``, ``native`` when
    ``native.write_config`` made HTCondor start the containers, ``bare`` for NEVER and
    DISABLE): write the setup state file and return the attributes naming it
    (``GLIDEIN_PLUGINS_STATE``...) to publish with the others (for ``container`` and
    ``native``: a bare glidein publishes what the reference does).

    The ``launch`` settings are checked in every mode. Raises GlideinFailure: ``Config`` for a
    wrong setting, ``WN_Resource`` when the file cannot be written or its path advertised.
    """
    launch_settings = settings(context.entry)
    mode = report.facts.mode
    if mode is None:
        return ()
    tmp_dir = context.get("TMP_DIR") or str(start_dir / "tmp")
    tmp_dir = tmp_dir if os.path.isabs(tmp_dir) else str(start_dir / tmp_dir)
    decision = "bare"
    if mode.wants_container:
        native_launch = any(attribute.name == native.LAUNCH_ATTRIBUTE
                            and attribute.value == "native" for attribute in report.attributes)
        decision = "native" if native_launch else "container"
    # the runtime's dirs at job start (launch.RUNTIME_DIRS)
    for sub in ("cache", "tmp") if mode.wants_container else ():
        try:
            os.makedirs(os.path.join(tmp_dir, "apptainer", sub), exist_ok=True)
        except OSError as exc:
            context.record(TraceEvent("advertise", "-", f"runtime dir under {tmp_dir} not made "
                                      f"now: {exc.strerror or exc}", "warning"))
    hooks = plugins.manager.hook.glidein_job_launch.get_hookimpls()
    state = setup_state.from_facts(
        report.facts, entry=context.entry_name, work_dir=str(start_dir),
        launch=launch_settings, tmp_dir=tmp_dir,
        required_os=context.get("GLIDEIN_REQUIRED_OS") or "",
        restrictions=sorted(restrictions(context)),
        cvmfs_root=context.cvmfs_root,
        container_env=context.value("GLIDEIN_CONTAINER_ENV"),
        container_env_clearlist=context.value("GLIDEIN_CONTAINER_ENV_CLEARLIST"),
        job_hooks=[impl.plugin_name for impl in reversed(hooks)
                   if impl.plugin_name != LAUNCH],
        decision=decision)
    path = setup_state.path_in(start_dir)
    try:
        # published for the standalone wrapper (the state's path, from the machine ad) and for
        # operators; the wrapper never takes them from the job's environment (SECURITY.md)
        attributes = tuple(Attribute(name, value, plugin=LAUNCH) for name, value in (
            (setup_state.ATTRIBUTE, path),
            ("GLIDEIN_PLUGINS_DIR", str(Path(INSTALL_DIR).resolve())),
            ("GLIDEIN_PLUGINS_PYTHON", sys.executable),
        ))
        setup_state.save(path, state)
    except (ConfigError, ValueError) as exc:
        raise GlideinFailure(FailureType.WN_RESOURCE,
                             f"cannot keep the setup state for job start: {exc}") from None
    context.record(TraceEvent("advertise", "-", f"setup state for job start ({decision}): "
                                                f"{path}"))
    # bare: the wrapper finds the decision beside condor_job_wrapper.sh; the standalone one
    # takes NEVER's GWMS_SINGULARITY_STATUS (the published set stays the reference's)
    return attributes if mode.wants_container else ()


def publish(values: glidein_config.GlideinConfig, attributes: Sequence[Attribute],
            work_dir: Path, wait: float | None = None) -> None:
    """Add every attribute to glidein_config and condor_vars.lst, each file written once.

    Every line is validated, and the condor_vars file found, before either file is touched;
    should glidein_config then fail to update, condor_vars.lst is put back as it was.
    """
    if attributes:
        advertise.write(values, advertise.vars_file(values, work_dir),
                        [condor_vars.VarLine(attr.name, attr.type.value) for attr in attributes],
                        {attr.name: attr.value for attr in attributes}, wait)


def _write_xml(start_dir: Path, script_id: str, report: SetupReport) -> Path | None:
    """The result XML; when it cannot be written, the run fails (``WN_Resource``): GlideinWMS
    must not take a work dir it cannot write in for a good one."""
    try:
        return result_xml.write(start_dir, script_id, report.failure, report.metrics())
    except ConfigError as exc:
        report.trace.append(TraceEvent("result", "-", f"cannot write result XML: {exc}", "error"))
        if report.failure is None:
            report.failure = Failure(FailureType.WN_RESOURCE, f"cannot write result XML: {exc}")
        return None
