"""Periodic re-validation: ``glidein-plugins periodic GLIDEIN_CONFIG [ID]``.

GlideinWMS runs a file with ``period="SECONDS"`` once as a setup script, then as an HTCondor
startd cron job (``script_wrapper.sh glidein_config ID ...``, in a temporary directory, with an
absolute glidein_config path): every ``NAME = value`` line it prints becomes a machine ClassAd
attribute, under the file's ``prefix`` (``GLIDEIN_PS_`` by default, none with
``prefix="NOPREFIX"``). A failing script only sets ``GLIDEIN_PS_OK = False``, so this one never
fails: it always exits 0 and prints valid lines (ClassAd literals, strings quoted), even on an
internal error. It re-checks what setup proved, cheaply and within a total time budget:

- **runtime**: the proven binary is still an executable file (one bounded ``stat``) and still
  answers ``--version``; when the probe cache (``.glidein_plugins/probe_cache.json``) is older
  than the probe's ``cache_ttl``, the full probe runs again (a container is started), and a
  feature setup relied on (``--contain``, ``--pid``, binding onto missing targets) that no
  longer works counts as broken: the wrapper's command line would fail;
- **CVMFS**: every repository holding the runtime, an image or a bind source, those the
  ``cvmfs`` plugin advertised at setup (its ``repositories`` setting and ``GLIDEIN_CVMFS_REPOS``),
  and those named by ``GLIDEIN_PLUGINS_CVMFS_REPOS`` or ``CVMFSReposList`` (comma, colon or
  space separated), still
  readable: one bounded ``stat`` of ``ROOT/REPO/.`` per repository, concurrently, so a stale
  mount costs a timeout, not a hang;
- **disk**: the glidein's local tmp dir, under which the runtime keeps its image cache and
  temporary files, has at least ``GLIDEIN_PLUGINS_PERIODIC_MIN_FREE_MB`` MiB free (1024;
  ``shutil.disk_usage`` in a bounded child process).

Printed (``_REASON`` lines say why, ``undefined`` when all is well)::

    HAS_SINGULARITY = False                 # only when setup found a runtime: all three pass
    HAS_SINGULARITY_REASON = "periodic re-check: runtime: ..."
    GLIDEIN_PLUGINS_RUNTIME_OK = False      # and _REASON; only when setup found a runtime
    GLIDEIN_PLUGINS_CVMFS_OK = True         # and _REASON
    HAS_CVMFS_oasis_opensciencegrid_org = True   # one per repository ('.' and '-' as '_')
    GLIDEIN_PLUGINS_DISK_OK = True          # and _REASON
    GLIDEIN_PLUGINS_DISK_FREE_MB = 51234
    GLIDEIN_PLUGINS_PERIODIC_OK = True      # every check passed (and _REASON)
    GLIDEIN_PLUGINS_PERIODIC_TIME = 1717171717

With ``prefix="NOPREFIX"`` the ``HAS_SINGULARITY`` printed here replaces the one setup
published, so a node whose runtime breaks stops matching container jobs within one period
(and its native-mode ``SINGULARITY_JOB`` stops containing PREFERRED jobs that did not ask for
an image). With the default prefix it arrives as ``GLIDEIN_PS_HAS_SINGULARITY``, for Frontend
expressions to use.

Inputs: glidein_config (``GLIDEIN_PLUGINS_STATE``, the setup state; the entry's name; ``TMP_DIR``;
``CVMFS_MOUNT_DIR``), the factory config (the ``probe`` settings), and
``GLIDEIN_PLUGINS_PERIODIC_BUDGET`` (seconds, 60; keep it below the period: HTCondor kills a
cron job still running when the next period starts; ``--budget`` overrides it).
"""

from __future__ import annotations

import math
import os
import re
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

from glidein_plugins.config import factory_config
from glidein_plugins.config.model import EntryConfig
from glidein_plugins.container import probe, test_image
from glidein_plugins.container.images import under
from glidein_plugins.container.runtime import runtime_env
from glidein_plugins.errors import InputError
from glidein_plugins.jobstart import setup_state as state_file
from glidein_plugins.node import commands, paths
from glidein_plugins.node.cvmfs_names import REPOS_KEY, name_problem
from glidein_plugins.protocol.glideinwms import glidein_config, result_xml
from glidein_plugins.protocol.htcondor import classad
from glidein_plugins.spec.checks import plugin_settings
from glidein_plugins.spec.context import Context, Deadline
from glidein_plugins.spec.results import Facts, RuntimeCandidate, one_line

DEFAULT_BUDGET = 60.0
BUDGET_KEY = "GLIDEIN_PLUGINS_PERIODIC_BUDGET"
MIN_FREE_KEY = "GLIDEIN_PLUGINS_PERIODIC_MIN_FREE_MB"
DEFAULT_MIN_FREE_MB = 1024
REPO_KEYS = ("GLIDEIN_PLUGINS_CVMFS_REPOS", "CVMFSReposList", REPOS_KEY)
CHECK_TIMEOUT = 20.0  # seconds for one look at CVMFS or the disk (capped by the budget)
OUTPUT_MARGIN = 1.0  # seconds of the budget kept for printing
RELIED_ON = ("contain", "pid_namespaces", "missing_target")  # features the wrapper's line uses
_DISK_USAGE = ("import shutil, sys\nusage = shutil.disk_usage(sys.argv[1])\n"
               "print(usage.free, usage.total)")


@dataclass(frozen=True)
class Check:
    """One re-check: whether it passed, and why not."""

    ok: bool
    reason: str = ""
    lines: tuple[tuple[str, str], ...] = ()  # more (name, ClassAd literal) to print
    critical: bool = True  # a failure means containers cannot start here


@dataclass
class Report:
    """What one run prints: ClassAd lines in order, and the XML metrics."""

    lines: list[tuple[str, str]] = field(default_factory=list)
    metrics: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, literal: str) -> None:
        classad.check_name(name)
        self.lines.append((name, literal))

    def flag(self, name: str, ok: bool, reason: str) -> None:
        """``X_OK = True|False`` (or ``X = ...``) and ``X_REASON``, ``undefined`` when True."""
        self.add(name, classad.boolean(ok))
        base = name[:-len("_OK")] if name.endswith("_OK") else name
        self.add(f"{base}_REASON", "undefined" if ok else string(reason or "no reason given"))

    def render(self) -> str:
        return "".join(f"{name} = {literal}\n" for name, literal in self.lines)


def string(text: str) -> str:
    """A ClassAd string literal for free text, on one line (quotes and backslashes are turned
    into harmless characters first, so no parser dialect can read it differently)."""
    return classad.quote(one_line(text))


def repo_attribute(repo: str) -> str:
    """``HAS_CVMFS_<repo>``, dots and dashes as underscores (OSG's names)."""
    return "HAS_CVMFS_" + re.sub(r"[^A-Za-z0-9_]", "_", repo)


def _number(text: str | None, default: float, minimum: float) -> float:
    """``text`` as a finite number of at least ``minimum``, else ``default``."""
    try:
        value = float(text or "")
    except ValueError:
        return default
    return value if math.isfinite(value) and value >= minimum else default


def _settings(context: Context) -> dict[str, Any]:
    return {**probe.SETTINGS, **context.settings("probe")}


# --- the checks ----------------------------------------------------------------------------------


def check_runtime(context: Context, facts: Facts) -> Check:
    """The proven runtime still runs (see the module docstring)."""
    assert facts.runtime is not None
    candidate = RuntimeCandidate(facts.runtime.candidate.path, "setup")
    binary = candidate.path
    settings = _settings(context)
    version_timeout = float(settings["version_timeout"])
    why = paths.describe(paths.inspect([binary], version_timeout, context.quiet_run)[binary])
    if why:
        return Check(False, why)
    image = test_image.choose(context, facts, settings).uri  # the image setup proved it with
    ttl = float(settings["cache_ttl"])
    key = probe.cache_key(candidate, image, settings, context.environ)
    if ttl > 0 and probe.cached_probe(context, key, ttl) is not None:
        answer = context.quiet_run([binary, "--version"], version_timeout,
                                   runtime_env(context))
        if not answer.ok:
            return Check(False, f"{binary} --version failed: {answer.reason}")
        return Check(True)
    fresh = probe.probe(context, facts, candidate,
                        plugin_settings(context, "probe", probe.SETTINGS))
    if not fresh.ok:
        return Check(False, f"{binary} failed its test again: {fresh.reason}")
    lost = [name for name in RELIED_ON
            if facts.runtime.features.get(name) and not fresh.features.get(name, True)]
    if lost:
        return Check(False, f"{binary}: {', '.join(lost)} worked at setup, not now: "
                     + "; ".join(fresh.reasons.get(name, "") for name in lost))
    return Check(True)


def repositories(facts: Facts, root: str, configured: Iterable[str]) -> tuple[
        dict[str, bool], list[str]]:
    """``repo -> critical`` (the runtime, an image or a bind lies in it: containers need it)
    and notes on names that are not repositories."""
    found: dict[str, bool] = {}
    notes = []
    used = [facts.runtime.candidate.path] if facts.runtime else []
    used += [image.uri for image in facts.images] + [bind.source for bind in facts.binds]
    for path in used:
        if under(path, root) and path.rstrip("/") != root:
            found[path[len(root) + 1:].split("/", 1)[0]] = True
    for text in configured:
        for name in re.split(r"[\s,:]+", text.strip()):
            if not name:
                continue
            if not name_problem(name):
                found.setdefault(name, False)
            else:
                notes.append(f"{name} is not a CVMFS repository name")
    return found, notes


def check_cvmfs(context: Context, facts: Facts, root: str) -> Check:
    """Every repository still readable (a bounded ``stat`` of ``ROOT/REPO/.`` each)."""
    listed = context.entry.plugin_settings("cvmfs").get("repositories")
    wanted, notes = repositories(facts, root, [
        *(context.get(key) or "" for key in REPO_KEYS),
        *(name for name in (listed if isinstance(listed, list) else []) if isinstance(name, str))])
    if not wanted:
        return Check(not notes, "; ".join(notes), critical=False)
    looked = paths.inspect([f"{root}/{repo}/." for repo in wanted], CHECK_TIMEOUT,
                           context.quiet_run, split_under=[root])
    lines, failed, critical = [], list(notes), False
    for repo, needed in wanted.items():
        info = looked[f"{root}/{repo}/."]
        ok = info.kind == "directory"
        lines.append((repo_attribute(repo), classad.boolean(ok)))
        if not ok:
            failed.append(f"{root}/{repo} " + (info.reason or f"is a {info.kind}, not a "
                                                               "directory"))
            critical = critical or needed
    return Check(not failed, "; ".join(failed), tuple(lines), critical)


def check_disk(context: Context, tmp_dir: str) -> Check:
    """At least the minimum free space where the runtime keeps its cache and temporary files."""
    minimum = int(_number(context.get(MIN_FREE_KEY), DEFAULT_MIN_FREE_MB, 0))
    result = context.quiet_run([sys.executable or "python3", "-I", "-S", "-c", _DISK_USAGE,
                                tmp_dir], CHECK_TIMEOUT)
    try:
        free, total = (int(word) for word in result.stdout.split())
    except ValueError:
        why = result.reason if not result.ok else f"unexpected output {result.stdout[:60]!r}"
        if "FileNotFoundError" in result.stderr:
            why = "does not exist"
        return Check(False, f"free space in {tmp_dir} unknown: {why}")
    free_mb = free // (1 << 20)
    lines = (("GLIDEIN_PLUGINS_DISK_FREE_MB", str(free_mb)),)
    if free_mb < minimum:
        return Check(False, f"{tmp_dir} has {free_mb} MiB free of {total // (1 << 20)} MiB, "
                            f"less than {minimum} MiB ({MIN_FREE_KEY})", lines)
    return Check(True, "", lines)


# --- one run -------------------------------------------------------------------------------------


def _run_checks(checks: Mapping[str, Callable[[], Check]], deadline: Deadline,
                budget: float) -> tuple[dict[str, Check], bool]:
    """Each check in a daemon thread; those not done by the deadline fail. Returns the results
    and whether a thread is still running."""
    results: dict[str, Check] = {}

    def target(name: str, check: Callable[[], Check]) -> None:
        try:
            results[name] = check()
        except Exception as exc:  # a check must never take the output down with it
            results[name] = Check(False, f"internal error: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=target, args=item, daemon=True, name=item[0])
               for item in checks.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(deadline.remaining(), 0.0) + OUTPUT_MARGIN / 2)
    for name in checks:
        results.setdefault(name, Check(False, f"not finished within the {budget:.0f} s budget"))
    return results, any(thread.is_alive() for thread in threads)


def recheck(config_path: Path, config_files: Sequence[Path] = (), budget: float | None = None,
            environ: Mapping[str, str] | None = None) -> tuple[Report, bool]:
    """Run the re-checks; returns what to print and whether a check is still running."""
    start = time.monotonic()
    environ = dict(os.environ if environ is None else environ)
    values = glidein_config.read(config_path)
    work_dir = config_path.resolve().parent
    entry = values.get("GLIDEIN_Entry_Name", "") or ""
    notes: list[str] = []
    try:
        entry_config = factory_config.load(config_files).entry(entry)
    except InputError as exc:  # the probe settings fall back to their defaults
        entry_config = EntryConfig(entry)
        notes.append(f"factory config: {exc}")
    context = Context(entry_config, values, work_dir, Deadline(DEFAULT_BUDGET, start), environ)
    if budget is None or budget <= 0:  # glidein_config, else the entry's YAML attributes
        budget = _number(context.get(BUDGET_KEY), DEFAULT_BUDGET, OUTPUT_MARGIN * 2)
    context.deadline = Deadline(max(budget - OUTPUT_MARGIN, OUTPUT_MARGIN), start)

    state, unreadable = None, ""
    state_path = values.get(state_file.ATTRIBUTE) or state_file.path_in(work_dir)
    try:
        if values.get(state_file.ATTRIBUTE) or os.path.exists(state_path):
            state = state_file.load(state_path)
    except InputError as exc:
        unreadable = str(exc)
        notes.append(unreadable)
    facts = state.facts() if state is not None else Facts()
    proven = state is not None and state.has_singularity and facts.runtime is not None
    root = (state.cvmfs_root if state is not None else context.cvmfs_root).rstrip("/")
    root = root or "/cvmfs"
    tmp_dir = state.tmp_dir if state is not None and state.tmp_dir else str(
        work_dir / (values.get("TMP_DIR") or "tmp"))
    checks: dict[str, Callable[[], Check]] = {"CVMFS": lambda: check_cvmfs(context, facts, root)}
    if proven:  # what only containers need
        checks["RUNTIME"] = lambda: check_runtime(context, facts)
        checks["DISK"] = lambda: check_disk(context, tmp_dir)
    results, running = _run_checks(checks, context.deadline, budget)

    report = Report()
    broken = [f"{name.lower()}: {check.reason}" for name, check in results.items()
              if not check.ok and check.critical]
    if proven:
        report.flag("HAS_SINGULARITY", not broken,
                    "periodic re-check: " + "; ".join(broken))
    elif unreadable:  # the job wrapper cannot read it either
        report.flag("HAS_SINGULARITY", False, f"periodic re-check: {unreadable}")
    for name in ("RUNTIME", "CVMFS", "DISK"):
        if name in results:
            report.flag(f"GLIDEIN_PLUGINS_{name}_OK", results[name].ok, results[name].reason)
            for line in results[name].lines:
                report.add(*line)
    failures = [f"{name.lower()}: {check.reason}" for name, check in results.items()
                if not check.ok] + notes
    report.flag("GLIDEIN_PLUGINS_PERIODIC_OK", not failures, "; ".join(failures))
    report.add("GLIDEIN_PLUGINS_PERIODIC_TIME", str(int(time.time())))
    report.metrics = {"periodic_ok": str(not failures),
                      "seconds": f"{time.monotonic() - start:.1f}"}
    if proven:
        report.metrics["has_singularity"] = str(not broken)
    return report, running


def run(config_path: Path, script_id: str = "entry", config_files: Sequence[Path] = (),
        budget: float | None = None, *, out: TextIO = sys.stdout,
        log: TextIO = sys.stderr) -> int:
    """The command: print the lines (whatever happens), leave an OK result XML in the cwd
    (GlideinWMS reads it after the first run), exit 0."""
    running = False
    try:
        report, running = recheck(config_path, config_files, budget)
    except Exception as exc:  # never fail: the lines must still be valid
        report = Report()
        report.flag("GLIDEIN_PLUGINS_PERIODIC_OK", False, str(exc) if isinstance(
            exc, InputError) else f"internal error: {type(exc).__name__}: {exc}")
        report.add("GLIDEIN_PLUGINS_PERIODIC_TIME", str(int(time.time())))
        report.metrics = {"periodic_ok": "False"}
    out.write(report.render())
    out.flush()
    for name, literal in report.lines:
        if name.endswith("_REASON") and literal != "undefined":
            print(f"glidein_plugins periodic: {name[:-len('_REASON')]}: {literal}", file=log)
    try:
        result_xml.write(Path.cwd(), script_id, None, report.metrics)
    except Exception as exc:
        print(f"glidein_plugins periodic: {result_xml.FILE_NAME} not written: {exc}", file=log)
    if running:  # a check still hangs (in the kernel?): leave now, its commands killed
        log.flush()
        commands.kill_all()
        os._exit(0)
    return 0
