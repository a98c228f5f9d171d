"""Built-in plugin ``discovery``: propose Apptainer/Singularity binaries in GlideinWMS's order.

1. ``GLIDEIN_SINGULARITY_BINARY_OVERRIDE`` (a file, or a PATH-like list of directories);
2. ``SINGULARITY_BIN`` (default ``OSG``): ``OSG`` = the directory of ``OSG_SINGULARITY_BINARY``,
   ``CONDOR`` = the HTCondor tarball's apptainer, ``PATH``, ``PASS``/empty = skip, else a directory;
3. ``apptainer`` then 4. ``singularity`` on PATH; 5. the HTCondor tarball's apptainer;
6. ``module load singularitypro`` and 7. ``module load singularity`` where modules exist;
8. the OSG-distributed binary in CVMFS (rebased on ``CVMFS_MOUNT_DIR``).
In a directory ``apptainer`` comes before ``singularity``. Values are read from glidein_config,
then from the environment. Directories are listed with one bounded ``stat``, never ``os.stat``.
"""

from __future__ import annotations

from glidein_plugins import hookimpl, paths
from glidein_plugins.context import Context
from glidein_plugins.images import rebase_cvmfs
from glidein_plugins.results import RuntimeCandidate

NAMES = ("apptainer", "singularity")
OSG_BINARY = "/cvmfs/oasis.opensciencegrid.org/mis/singularity/bin/singularity"
SETTINGS = {"timeout": 10.0, "modules": True}
# a constant script (no value is ever interpolated): load module $1, print the binary's path
_MODULE_SCRIPT = (
    'for init in "$MODULESHOME/init/bash" /usr/share/lmod/lmod/init/bash; do '
    '[ -r "$init" ] && . "$init" && break; done; '
    'module load "$1" >/dev/null 2>&1 && { command -v apptainer || command -v singularity; }'
)


def value(context: Context, key: str) -> str:
    """``key`` from glidein_config (or the entry config), else the environment, stripped."""
    found = context.get(key)
    return (found if found is not None else context.environ.get(key, "")).strip()


def cvmfs_root(context: Context) -> str:
    return value(context, "CVMFS_MOUNT_DIR") or "/cvmfs"


def _in_dirs(directories: list[str]) -> list[str]:
    return [f"{directory.rstrip('/')}/{name}" for directory in directories for name in NAMES
            if directory]


def _condor_apptainer(context: Context) -> str | None:
    condor_dir = value(context, "CONDOR_DIR")
    return f"{condor_dir.rstrip('/')}/usr/libexec/apptainer" if condor_dir else None


def _osg_binary(context: Context) -> str:
    return value(context, "OSG_SINGULARITY_BINARY") or rebase_cvmfs(OSG_BINARY,
                                                                   cvmfs_root(context))


def _planned(context: Context) -> list[tuple[str, str, bool]]:
    """``(path, source, must_exist)`` in order; ``must_exist`` hides absent PATH entries."""
    plan: list[tuple[str, str, bool]] = []
    override = value(context, "GLIDEIN_SINGULARITY_BINARY_OVERRIDE")
    if override:
        directories = [item for item in override.split(":") if item]
        plan += [(override, "GLIDEIN_SINGULARITY_BINARY_OVERRIDE", False)]
        plan += [(path, "GLIDEIN_SINGULARITY_BINARY_OVERRIDE", True)
                 for path in _in_dirs(directories)]
    path_dirs = [item for item in context.environ.get("PATH", "").split(":") if item]
    setting = value(context, "SINGULARITY_BIN") or "OSG"
    keyword = setting.upper()
    source = f"SINGULARITY_BIN={setting}"
    if keyword == "OSG":
        plan += [(path, source, False) for path in
                 _in_dirs([_osg_binary(context).rsplit("/", 1)[0]])]
    elif keyword == "CONDOR":
        condor = _condor_apptainer(context)
        plan += [(condor, source, False)] if condor else []
    elif keyword == "PATH":
        plan += [(path, source, True) for path in _in_dirs(path_dirs)]
    elif keyword not in ("PASS", ""):
        plan += [(path, source, False) for path in _in_dirs([setting])]
    for name in NAMES:
        plan += [(f"{d.rstrip('/')}/{name}", f"{name} on PATH", True) for d in path_dirs]
    condor = _condor_apptainer(context)
    if condor:
        plan.append((condor, "HTCondor tarball (CONDOR_DIR)", True))
    return plan


def _from_modules(context: Context, timeout: float) -> list[tuple[str, str]]:
    if not (context.environ.get("MODULESHOME") or context.environ.get("LMOD_CMD")):
        return []
    found = []
    for module in ("singularitypro", "singularity"):
        result = context.run(["bash", "-c", _MODULE_SCRIPT, "glidein-plugins", module],
                             timeout=timeout)
        path = result.stdout.strip().splitlines()[-1:] if result.ok else []
        if path and path[0].startswith("/"):
            found.append((path[0], f"module load {module}"))
    return found


@hookimpl(trylast=True)
def glidein_runtime_discover(context: Context) -> list[RuntimeCandidate]:
    settings = {**SETTINGS, **context.settings("discovery")}
    timeout = float(settings["timeout"])
    plan = _planned(context)
    info = paths.inspect([path for path, _, _ in plan], timeout, context.run)
    candidates: list[RuntimeCandidate] = []
    for path, source, must_exist in plan:
        if not must_exist or info[path].exists:
            candidates.append(RuntimeCandidate(path, source, 10 * (len(candidates) + 1)))
    if settings["modules"]:
        candidates += [RuntimeCandidate(path, source, 900 + len(candidates))
                       for path, source in _from_modules(context, timeout)]
    candidates.append(RuntimeCandidate(_osg_binary(context), "OSG CVMFS", 1000))
    return candidates
