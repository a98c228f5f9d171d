"""Human-readable and JSON renderings of a setup run, and of the plugin list."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from glidein_plugins.manager import Plugins
    from glidein_plugins.session import SetupOutcome


def _table(rows: Sequence[Sequence[str]], out: TextIO, indent: str = "  ") -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths)] + [row[-1]]
        print(indent + "  ".join(cells).rstrip(), file=out)


def _result_line(outcome: SetupOutcome) -> str:
    failure = outcome.report.failure
    if failure is None:
        return "OK (exit 0)"
    return f"FAILED (exit 1): {failure.type.value}: {failure.message}"


def print_setup(outcome: SetupOutcome, out: TextIO) -> None:
    """The glidein log lines of a setup run: trace, attributes, result."""
    for event in outcome.report.trace:
        print(f"glidein_plugins: [{event.level}] {event.phase}/{event.plugin}: {event.message}",
              file=out)
    for attr in outcome.report.attributes:
        print(f"glidein_plugins: advertise {attr.name} = {attr.classad_literal} ({attr.plugin})",
              file=out)
    print(f"glidein_plugins: entry {outcome.entry or '(unnamed)'}: {_result_line(outcome)}",
          file=out)


def print_run(outcome: SetupOutcome, host: str, out: TextIO) -> None:
    """The dry run's report: result, attributes with their plugin, decision trace."""
    report = outcome.report
    print(f"glidein-plugins dry run on {host}, entry {outcome.entry!r}", file=out)
    print(f"Result:  {_result_line(outcome)}", file=out)
    if report.facts.mode is not None:
        print(f"Mode:    {report.facts.mode.outcome.value} ({report.facts.mode.reason})", file=out)
    runtime = report.facts.runtime
    if runtime is None:
        print(f"Runtime: none ({report.facts.runtime_reason})", file=out)
    else:
        print(f"Runtime: {runtime.candidate.path} ({runtime.flavour} {runtime.version}, "
              f"{runtime.privilege})", file=out)
    print("", file=out)
    if report.attributes:
        print("Attributes", file=out)
        rows = [("NAME", "TYPE", "PLUGIN", "VALUE")] + [
            (a.name, a.type.value, a.plugin, a.classad_literal) for a in report.attributes]
        _table(rows, out)
    else:
        print("Attributes: none published", file=out)
    print("", file=out)
    print("Decision trace", file=out)
    _table([("PHASE", "BY", "LEVEL", "DECISION")] + [
        (e.phase, e.plugin, e.level, e.message) for e in report.trace], out)


def as_json(outcome: SetupOutcome) -> dict[str, Any]:
    """The dry run as a JSON-ready dict."""
    report = outcome.report
    facts = report.facts
    return {
        "entry": outcome.entry,
        "exit_code": report.exit_code,
        "failure": None if report.failure is None else {
            "type": report.failure.type.value, "message": report.failure.message},
        "mode": None if facts.mode is None else {
            "outcome": facts.mode.outcome.value, "frontend": facts.mode.frontend,
            "factory": facts.mode.factory, "reason": facts.mode.reason},
        "runtime": None if facts.runtime is None else {
            "path": facts.runtime.candidate.path, "version": facts.runtime.version,
            "flavour": facts.runtime.flavour, "privilege": facts.runtime.privilege},
        "runtime_reason": facts.runtime_reason,
        "rejected_runtimes": [
            {"path": p.candidate.path, "source": p.candidate.source, "reason": p.reason}
            for p in facts.rejected_runtimes],
        "gpus": [{"vendor": g.vendor, "name": g.name, "uuid": g.uuid} for g in facts.gpus],
        "attributes": [
            {"name": a.name, "type": a.type.value, "value": a.value, "plugin": a.plugin}
            for a in report.attributes],
        "metrics": report.metrics(),
        "trace": [
            {"phase": e.phase, "plugin": e.plugin, "level": e.level, "message": e.message}
            for e in report.trace],
    }


def print_plugins(plugins: Plugins, available: Mapping[str, tuple[Any, str, str]],
                  out: TextIO) -> None:
    """Registered plugins with their hooks, then problems and installed-but-unused ones."""
    rows: list[tuple[str, ...]] = [("NAME", "SOURCE", "DISTRIBUTION", "HOOKS")]
    for name, info in plugins.info.items():
        plugin = plugins.manager.get_plugin(name)
        hooks = sorted(caller.name for caller in plugins.manager.get_hookcallers(plugin) or [])
        version = f" {info.version}" if info.version else ""
        rows.append((name, info.source, info.distribution + version, ", ".join(hooks)))
    print("Registered plugins", file=out)
    _table(rows, out)
    for name in plugins.blocked:
        print(f"Blocked: {name}", file=out)
    for problem in plugins.problems:
        print(f"{'Error' if problem.fatal else 'Skipped'}: {problem}", file=out)
    unused = sorted(set(available) - set(plugins.info) - set(plugins.blocked))
    for name in unused:
        _, dist, version = available[name]
        print(f"Installed, not enabled for this entry: {name} ({dist} {version})", file=out)
