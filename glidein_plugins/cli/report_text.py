"""Human-readable and JSON renderings of a setup run, and of the plugin list.

Tables fit the terminal: ``$COLUMNS``, else the terminal's width when the output is one (piped
output is not cut); a cell too wide for its column continues on the next lines, in its column.
"""

from __future__ import annotations

import math
import os
import shutil
import textwrap
from collections.abc import Mapping, Sequence
from itertools import zip_longest
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from glidein_plugins.engine.manager import Plugins
    from glidein_plugins.runs.session import SetupOutcome
    from glidein_plugins.spec.results import Attribute, Bind, Facts, RuntimeProbe

MIN_COLUMN = 8  # characters a column keeps, however narrow the terminal


def width_of(out: TextIO) -> int | None:
    """The width tables must fit in: ``$COLUMNS``, else the terminal's; None when ``out`` is
    no terminal (a file, a pipe: nothing is cut)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return shutil.get_terminal_size().columns if out.isatty() else None
    except (AttributeError, ValueError, OSError):
        return None


def plural(count: int, noun: str, many: str = "") -> str:
    """``1 candidate``, ``2 candidates``."""
    return f"{count} {noun if count == 1 else many or noun + 's'}"


def table(rows: Sequence[Sequence[str]], out: TextIO, indent: str = "  ") -> None:
    """``rows`` (the first is the header) in aligned columns, within ``width_of(out)``."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    limit = width_of(out)
    if limit is not None:
        room = limit - len(indent) - 2 * (len(widths) - 1)
        while sum(widths) > room and max(widths) > MIN_COLUMN:
            widest = widths.index(max(widths))
            widths[widest] -= 1
    for row in rows:
        wrapped = [textwrap.wrap(cell, width, break_on_hyphens=False) or [""]
                   if len(cell) > width else [cell] for cell, width in zip(row, widths)]
        for parts in zip_longest(*wrapped, fillvalue=""):
            cells = [part.ljust(width) for part, width in zip(parts, widths)]
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


def _runtime_line(facts: Facts) -> str:
    runtime = facts.runtime
    if runtime is None and facts.image_problem:
        return f"not looked for ({facts.image_problem})"
    if runtime is None and facts.rejected_runtimes:
        return (f"none: no working container runtime among the "
                f"{plural(len(facts.rejected_runtimes), 'candidate')} below")
    if runtime is None:
        return f"none ({facts.runtime_reason})"
    proven = (f"; proven with {runtime.test_image} ({runtime.test_image_source})"
              if runtime.test_image else "")
    return (f"{runtime.candidate.path} ({runtime.flavour} {runtime.version}, {runtime.privilege}; "
            f"from {runtime.candidate.source}{proven})")


def _features(runtime: RuntimeProbe) -> str:
    """``name=yes, other=no (why)`` for what the probe learnt."""
    parts = []
    for name, value in runtime.features.items():
        why = runtime.reasons.get(name, "")
        parts.append(f"{name}={'yes' if value else 'no'}"
                     + (f" ({why})" if why and (not value or name == "nested") else ""))
    userns = runtime.reasons.get("user_namespaces")
    if userns:
        parts.append(f"user_namespaces={userns}")
    return ", ".join(parts)


def _candidate_rows(facts: Facts) -> list[tuple[str, ...]]:
    """Every candidate probed, in order: the rejected ones with why, then the one chosen."""
    rows: list[tuple[str, ...]] = [
        (str(number), probe.candidate.path, probe.candidate.source, f"rejected: {probe.reason}")
        for number, probe in enumerate(facts.rejected_runtimes, 1)]
    if facts.runtime is not None:
        chosen = facts.runtime
        rows.append((str(len(rows) + 1), chosen.candidate.path, chosen.candidate.source,
                     f"chosen: {chosen.flavour} {chosen.version}, {chosen.privilege}"))
    return rows


def _bind_rows(facts: Facts, verbose: bool) -> list[tuple[str, ...]]:
    """Kept binds, and dropped ones; the absent defaults (optional by design) only ``verbose``."""
    rows: list[tuple[str, ...]] = [
        (b.source, b.destination, b.options or "-", b.origin, "kept") for b in facts.binds]
    rows += [(v.bind.source, v.bind.destination, v.bind.options or "-", v.bind.origin,
              f"dropped: {v.reason}") for v in facts.rejected_binds
             if verbose or v.bind.origin != "default"]
    return rows


def alias_groups(attributes: Sequence[Attribute]) -> list[tuple[Attribute, list[str]]]:
    """Each attribute once, with the other names it is published under (GlideinWMS's
    ``SINGULARITY_X``, ``GWMS_SINGULARITY_X``, ``CONTAINERSW_X``...: same plugin and value)."""
    from glidein_plugins.container.runtime import PREFIXES  # noqa: PLC0415

    def key(attr: Attribute) -> tuple[str, ...] | None:
        prefix = next((p for p in PREFIXES if attr.name.startswith(p)), None)
        return None if prefix is None else (
            attr.plugin, attr.type.value, attr.value, attr.name[len(prefix):])

    groups: list[tuple[Attribute, list[str]]] = []
    first: dict[tuple[str, ...], list[str]] = {}
    for attr in attributes:
        found = key(attr)
        if found is not None and found in first:
            first[found].append(attr.name)
            continue
        groups.append((attr, []))
        if found is not None:
            first[found] = groups[-1][1]
    return groups


def print_run(outcome: SetupOutcome, host: str, out: TextIO, verbose: bool = False) -> None:
    """The dry run's report: result, mode, runtime candidates, images, binds, attributes with
    their plugin, the warnings and errors of the decision trace (``verbose``: every decision,
    the absent default binds, the other names of each attribute)."""
    report = outcome.report
    facts = report.facts
    print(f"glidein-plugins dry run on {host}, entry {outcome.entry!r}", file=out)
    print(f"Result:  {_result_line(outcome)}", file=out)
    if facts.mode is not None:
        print(f"Mode:    {facts.mode.outcome.value} ({facts.mode.reason})", file=out)
    print(f"Runtime: {_runtime_line(facts)}", file=out)
    if facts.runtime is not None and (facts.runtime.features or facts.runtime.reasons):
        print(f"Features: {_features(facts.runtime)}", file=out)
    candidates = _candidate_rows(facts)
    if candidates:
        print("", file=out)
        print("Runtime candidates", file=out)
        table([("#", "PATH", "SOURCE", "DECISION"), *candidates], out)
    if facts.mode is not None and facts.mode.wants_container:
        print("", file=out)
        default = (f"{facts.image.platform} {facts.image.uri}" if facts.image else
                   "none for this node's platforms")
        if facts.images:
            print(f"Images (default: {default})", file=out)
            table([("PLATFORM", "SOURCE", "URI")]
                   + [(i.platform, i.source, i.uri) for i in facts.images], out)
        else:
            print("Images: none usable (see the images decisions in the trace)", file=out)
        binds = _bind_rows(facts, verbose)
        if binds:
            print("", file=out)
            print("Binds", file=out)
            table([("SOURCE", "DESTINATION", "OPTIONS", "ORIGIN", "DECISION"), *binds], out)
        elif facts.runtime is not None:
            print("Binds: none", file=out)
    print("", file=out)
    if report.attributes:
        print("Attributes", file=out)
        groups = alias_groups(report.attributes)
        rows = [("NAME", "TYPE", "PLUGIN", "VALUE", *(("ALSO AS",) if verbose else ()))] + [
            (a.name, a.type.value, a.plugin, a.classad_literal,
             *((", ".join(aliases),) if verbose else ())) for a, aliases in groups]
        table(rows, out)
        more = sum(len(aliases) for _, aliases in groups)
        if more and not verbose:
            print(f"  (and {plural(more, 'other name')} for the same values: -v lists them)",
                  file=out)
    else:
        print("Attributes: none published", file=out)
    print("", file=out)
    events = [e for e in report.trace if verbose or e.level in ("warning", "error")]
    hidden = len(report.trace) - len(events)
    print("Decision trace" + (f" (warnings and errors; {plural(hidden, 'decision')} more "
                              "with -v)" if hidden else ""), file=out)
    if events:
        table([("PHASE", "BY", "LEVEL", "DECISION")] + [
            (e.phase, e.plugin, e.level, e.message) for e in events], out)


def _bind_json(bind: Bind) -> dict[str, str]:
    return {"source": bind.source, "destination": bind.destination, "options": bind.options,
            "origin": bind.origin}


def as_json(outcome: SetupOutcome) -> dict[str, Any]:
    """The dry run as a JSON-ready dict."""
    report = outcome.report
    facts = report.facts
    runtime = facts.runtime
    return {
        "entry": outcome.entry,
        "exit_code": report.exit_code,
        "failure": None if report.failure is None else {
            "type": report.failure.type.value, "message": report.failure.message},
        "mode": None if facts.mode is None else {
            "outcome": facts.mode.outcome.value, "frontend": facts.mode.frontend,
            "factory": facts.mode.factory, "reason": facts.mode.reason},
        "runtime": None if runtime is None else {
            "path": runtime.candidate.path, "source": runtime.candidate.source,
            "plugin": runtime.candidate.plugin, "version": runtime.version,
            "full_version": runtime.full_version, "flavour": runtime.flavour,
            "privilege": runtime.privilege, "features": dict(runtime.features),
            "reasons": dict(runtime.reasons)},
        "runtime_reason": facts.runtime_reason,
        "rejected_runtimes": [
            {"path": p.candidate.path, "source": p.candidate.source,
             "plugin": p.candidate.plugin, "reason": p.reason}
            for p in facts.rejected_runtimes],
        "images": [{"platform": i.platform, "uri": i.uri, "source": i.source}
                   for i in facts.images],
        "image": None if facts.image is None else {
            "platform": facts.image.platform, "uri": facts.image.uri,
            "source": facts.image.source},
        "binds": [_bind_json(bind) for bind in facts.binds],
        "rejected_binds": [{**_bind_json(v.bind), "reason": v.reason, "plugin": v.plugin}
                           for v in facts.rejected_binds],
        "gpus": [{"vendor": g.vendor, "name": g.name, "uuid": g.uuid} for g in facts.gpus],
        "attributes": [
            {"name": a.name, "type": a.type.value, "value": a.value, "plugin": a.plugin}
            for a in report.attributes],
        "metrics": {key: number(value) for key, value in report.metrics().items()},
        "trace": [
            {"phase": e.phase, "plugin": e.plugin, "level": e.level, "message": e.message}
            for e in report.trace],
    }


def number(text: str) -> Any:
    """A metric as JSON has it: a number when it is one (``"3"`` -> 3), else the text."""
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        return value if not isinstance(value, float) or math.isfinite(value) else text
    return text


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
    table(rows, out)
    for name in plugins.blocked:
        print(f"Blocked: {name}", file=out)
    for problem in plugins.problems:
        print(f"{'Error' if problem.fatal else 'Skipped'}: {problem}", file=out)
    failed = {problem.name for problem in plugins.problems}
    unused = sorted(set(available) - set(plugins.info) - set(plugins.blocked) - failed)
    for name in unused:
        _, dist, version = available[name]
        print(f"Installed, not enabled for this entry: {name} ({dist} {version})", file=out)
