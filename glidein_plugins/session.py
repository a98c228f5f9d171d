"""One setup run as GlideinWMS performs it: read glidein_config, load the entry's config, run the
phases, publish the attributes, and leave the result XML in the starting directory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

from glidein_plugins import condor_vars, factory_config, glidein_config, manager, result_xml
from glidein_plugins.context import Context, Deadline
from glidein_plugins.errors import ConfigError, FailureType
from glidein_plugins.results import Attribute, Facts, Failure, TraceEvent
from glidein_plugins.runner import Runner, SetupReport, tracer_from

ENTRY_KEY = "GLIDEIN_Entry_Name"
CONDOR_VARS_KEY = "CONDOR_VARS_FILE"


@dataclass(frozen=True)
class SetupOutcome:
    """A finished setup: the report and where the XML was written."""

    report: SetupReport
    entry: str
    xml_path: Optional[Path]


def run_setup(
    config_path: Path,
    script_id: str = "entry",
    config_files: Sequence[Path] = (),
    start_dir: Optional[Path] = None,
    environ: Optional[Mapping[str, str]] = None,
) -> SetupOutcome:
    """Run setup for the glidein_config at ``config_path`` (relative to ``start_dir``)."""
    start_dir = start_dir or Path.cwd()
    environ = dict(os.environ if environ is None else environ)
    path = config_path if config_path.is_absolute() else start_dir / config_path
    entry = ""
    try:
        values = glidein_config.read(path)
        entry = values.get(ENTRY_KEY, "") or ""
        entry_config = factory_config.load(config_files).entry(entry)
        plugins = manager.build(entry_config, environ)
        context = Context(entry_config, values, start_dir, Deadline(entry_config.budget_seconds),
                          environ)
        for problem in values.problems:
            context.record(TraceEvent("config", "glidein_config", problem, "warning"))
        report = Runner(plugins, context, tracer_from(environ)).setup()
    except ConfigError as exc:
        report = SetupReport(Facts(), (), Failure(FailureType.CONFIG, str(exc)),
                             [TraceEvent("config", "-", str(exc), "error")])
    else:
        if report.failure is None:
            try:
                publish(values, report.attributes, start_dir)
            except (ConfigError, ValueError) as exc:
                report.failure = Failure(FailureType.CONFIG, f"cannot publish attributes: {exc}")
                report.trace.append(TraceEvent("advertise", "-", str(exc), "error"))
    xml_path = _write_xml(start_dir, script_id, report)
    return SetupOutcome(report, entry, xml_path)


def publish(values: glidein_config.GlideinConfig, attributes: Sequence[Attribute],
            work_dir: Path) -> None:
    """Add every attribute to glidein_config and condor_vars.lst, each file written once.

    Every line is validated before either file is touched.
    """
    if not attributes:
        return
    target = values.get(CONDOR_VARS_KEY)
    if not target:
        raise ConfigError(values.where(CONDOR_VARS_KEY) or values.path.name,
                          f"{CONDOR_VARS_KEY} is not set: cannot publish attributes")
    vars_path = Path(target) if os.path.isabs(target) else work_dir / target
    lines = [condor_vars.VarLine(attr.name, attr.type.value) for attr in attributes]
    glidein_config.update(values.path, {attr.name: attr.value for attr in attributes})
    condor_vars.update(vars_path, lines)


def _write_xml(start_dir: Path, script_id: str, report: SetupReport) -> Optional[Path]:
    try:
        return result_xml.write(start_dir, script_id, report.failure, report.metrics())
    except ConfigError as exc:
        report.trace.append(TraceEvent("result", "-", f"cannot write result XML: {exc}", "error"))
        return None
