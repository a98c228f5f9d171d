"""Built-in plugin ``discovery``: propose Apptainer/Singularity binaries in GlideinWMS's order.

Priorities (lower is probed first; a VO plugin slots in between with its own numbers):

=====  =========================================================================================
100+   ``GLIDEIN_SINGULARITY_BINARY_OVERRIDE``: a file, or a PATH-like list of directories
200+   ``SINGULARITY_BIN`` (default ``OSG``): ``OSG`` = the directory of ``OSG_SINGULARITY_BINARY``,
       ``CONDOR`` = the HTCondor tarball's apptainer, ``PATH`` = as below, ``PASS``/empty = skip,
       anything else = a directory (or a binary)
300+   ``apptainer`` in each PATH directory, then 400+ ``singularity`` in each
500    the HTCondor tarball's apptainer, ``$CONDOR_DIR/usr/libexec/apptainer``
600+   ``module load singularitypro``, then ``module load singularity`` (only where environment
       modules exist: ``MODULESHOME`` or ``LMOD_CMD`` set): the programs the module puts on PATH
700    the OSG-distributed binary in CVMFS (``OSG_SINGULARITY_BINARY``, else
       ``/cvmfs/oasis.opensciencegrid.org/mis/singularity/bin/singularity`` rebased on
       ``CVMFS_MOUNT_DIR``)
=====  =========================================================================================

In a directory ``apptainer`` comes before ``singularity``. What a site or VO named explicitly
(the override, a ``SINGULARITY_BIN`` directory, ``CONDOR``, the OSG binary) is proposed even
when it does not exist, so that its rejection is explained; what is merely looked for (PATH,
``OSG``'s directory, modules) is proposed only when it exists. A path that could not be looked
at (a stale mount: ``stat`` timed out) is not proposed, since probing it would hang again; the
decision trace says why. Values are read from
glidein_config, then from the environment. Paths are looked at with bounded ``stat`` processes
(``paths.inspect``), never ``os.stat``, so a stale CVMFS cannot hang the glidein.
"""

from __future__ import annotations

from dataclasses import dataclass

from glidein_plugins import hookimpl
from glidein_plugins.config.options import Option, Options
from glidein_plugins.container.images import rebase_cvmfs
from glidein_plugins.node import paths
from glidein_plugins.spec import checks
from glidein_plugins.spec.context import Context
from glidein_plugins.spec.results import RuntimeCandidate

NAMES = ("apptainer", "singularity")
OSG_BINARY = "/cvmfs/oasis.opensciencegrid.org/mis/singularity/bin/singularity"
CONDOR_APPTAINER = "usr/libexec/apptainer"
MODULES = ("singularitypro", "singularity")
SETTINGS = Options(
    Option("timeout", 10.0, checks.seconds,
           "seconds for each look at the candidate paths, and for each module load"),
    Option("modules", True, checks.boolean,
           "try module load singularitypro/singularity where modules exist"),
)
OVERRIDE_KEY = "GLIDEIN_SINGULARITY_BINARY_OVERRIDE"
BIN_KEY = "SINGULARITY_BIN"
# a constant script (no value is ever interpolated): make `module` available, load module $1,
# print PATH (the caller looks for the runtime in the directories the module added)
_MODULE_SCRIPT = (
    'if ! type module >/dev/null 2>&1; then '
    'for init in "${MODULESHOME:+$MODULESHOME/init/bash}" '
    '"${LMOD_CMD:+${LMOD_CMD%/libexec/lmod}/init/bash}" /usr/share/lmod/lmod/init/bash; do '
    '[ -n "$init" ] && [ -r "$init" ] && . "$init" >/dev/null 2>&1 && break; done; fi; '
    'module load "$1" >/dev/null 2>&1 && printf "%s\\n" "$PATH"'
)


def osg_binary(context: Context) -> str:
    """The OSG-distributed runtime: ``OSG_SINGULARITY_BINARY``, else the default in CVMFS."""
    return context.value("OSG_SINGULARITY_BINARY") or rebase_cvmfs(OSG_BINARY, context.cvmfs_root)


def condor_apptainer(context: Context) -> str:
    """The HTCondor tarball's apptainer ('' without ``CONDOR_DIR``)."""
    condor_dir = context.value("CONDOR_DIR").rstrip("/")
    return f"{condor_dir}/{CONDOR_APPTAINER}" if condor_dir else ""


def path_dirs(context: Context) -> list[str]:
    """The PATH directories, each once (``/usr/bin/`` is ``/usr/bin``)."""
    return list(dict.fromkeys(item.rstrip("/") or "/"
                              for item in context.environ.get("PATH", "").split(":") if item))


def in_dir(directory: str, name: str) -> str:
    return f"{directory.rstrip('/')}/{name}"


@dataclass(frozen=True)
class Planned:
    """One place to look: a program, or a directory to look for apptainer/singularity in."""

    path: str
    source: str
    priority: int
    explicit: bool  # proposed even when missing, so that its rejection is explained


def _rank(base: int, index: int) -> int:
    """The priority of the ``index``-th candidate of a source (ties keep proposal order)."""
    return base + min(index, 99)


def plan(context: Context) -> list[Planned]:
    """Every place to look, in order, before anything is looked at."""
    planned: list[Planned] = []
    override = context.value(OVERRIDE_KEY)
    if override:
        items = [item for item in override.split(":") if item]
        planned += [Planned(item, OVERRIDE_KEY, _rank(100, i), True)
                    for i, item in enumerate(items)]
    setting = context.value(BIN_KEY)
    keyword = (setting or "OSG").upper()
    source = f"{BIN_KEY}={setting or 'OSG (default)'}"
    if keyword == "OSG":
        directory = osg_binary(context).rsplit("/", 1)[0]
        planned += [Planned(in_dir(directory, name), source, _rank(200, i), False)
                    for i, name in enumerate(NAMES)]
    elif keyword == "CONDOR":
        condor = condor_apptainer(context)
        if condor:
            planned.append(Planned(condor, source, 200, True))
        else:
            context.note(f"{source}: CONDOR_DIR is not set, no HTCondor apptainer", "warning")
    elif keyword == "PATH":
        on_path = [in_dir(d, name) for name in NAMES for d in path_dirs(context)]
        planned += [Planned(path, source, _rank(200, i), False) for i, path in enumerate(on_path)]
    elif keyword == "NONE":
        context.note(f"{source} is no longer valid (GLIDEIN_SINGULARITY_REQUIRE controls the "
                     "use of containers): skipped", "warning")
    elif keyword != "PASS":
        planned.append(Planned(setting, source, 200, True))
    for offset, name in ((300, "apptainer"), (400, "singularity")):
        planned += [Planned(in_dir(d, name), f"{name} on PATH", _rank(offset, i), False)
                    for i, d in enumerate(path_dirs(context))]
    condor = condor_apptainer(context)
    if condor:
        planned.append(Planned(condor, "HTCondor tarball (CONDOR_DIR)", 500, False))
    planned.append(Planned(osg_binary(context), "OSG CVMFS", 700, True))
    return planned


def _candidates(planned: list[Planned], info: dict[str, paths.PathInfo],
                context: Context) -> list[RuntimeCandidate]:
    """Candidates from the looks: a configured directory gives the programs in it."""
    found: list[RuntimeCandidate] = []
    for item in planned:
        look = info[item.path]
        if item.explicit and look.kind == "directory":
            inside = [in_dir(item.path, name) for name in NAMES]
            programs = [path for path in inside if info[path].exists]
            found += [RuntimeCandidate(path, f"{item.source} (directory)", item.priority)
                      for path in programs]
            if not programs:
                context.note(f"{item.source}: directory {item.path} holds neither apptainer "
                             "nor singularity", "warning")
                found.append(RuntimeCandidate(item.path, f"{item.source} (a directory without "
                                              "apptainer or singularity)", item.priority))
        elif look.kind == "unknown":  # probing it would hang again: the trace says why
            context.note(f"{item.path} ({item.source}) not proposed: {look.reason}", "warning")
        elif item.explicit or look.exists:
            found.append(RuntimeCandidate(item.path, item.source, item.priority))
    return found


def _from_modules(context: Context, timeout: float) -> list[RuntimeCandidate]:
    """What ``module load singularitypro`` / ``singularity`` puts on PATH (runtimes only)."""
    environ = context.environ
    if not (environ.get("MODULESHOME") or environ.get("LMOD_CMD")):
        context.note("environment modules not available (MODULESHOME and LMOD_CMD unset): "
                     "module load not tried")
        return []
    before = set(path_dirs(context))
    found: list[RuntimeCandidate] = []
    for i, module in enumerate(MODULES):
        limit = context.timeout_for(timeout)
        if not limit:
            context.note(f"module load {module}: not tried, setup time budget exhausted",
                         "warning")
            break
        result = context.run(["bash", "-c", _MODULE_SCRIPT, "glidein-plugins", module],
                             timeout=limit, env=environ)
        if not result.ok:
            context.note(f"module load {module}: not available ({result.reason})")
            continue
        lines = result.stdout.strip().splitlines()
        added = [d for d in (lines[-1].split(":") if lines else []) if d and d not in before]
        looked = paths.inspect([in_dir(d, name) for name in NAMES for d in added], timeout,
                               context.quiet_run)
        programs = [path for path, seen in looked.items() if seen.exists]
        if not programs:
            context.note(f"module load {module}: no apptainer or singularity among the "
                         f"directories it added to PATH ({':'.join(added) or 'none'})")
        found += [RuntimeCandidate(path, f"module load {module}", _rank(600, 10 * i + j))
                  for j, path in enumerate(programs)]
    return found


@hookimpl(trylast=True)
def glidein_runtime_discover(context: Context) -> list[RuntimeCandidate]:
    settings = checks.plugin_settings(context, "discovery", SETTINGS)
    timeout = float(settings["timeout"])
    planned = plan(context)
    wanted = [item.path for item in planned]
    wanted += [in_dir(item.path, name) for item in planned if item.explicit for name in NAMES]
    info = paths.inspect(wanted, timeout, context.quiet_run,
                         split_under=[context.cvmfs_root])
    candidates = _candidates(planned, info, context)
    if settings["modules"]:
        candidates += _from_modules(context, timeout)
    return candidates
