"""The container runtime's environment for one job (``runtime_environment``), and the rules
about variables the wrapper applies elsewhere (exported functions, what the runtime reads).

Rules (GlideinWMS's ``singularity_lib.sh``, with its known gaps fixed):

**Environment** (``GLIDEIN_CONTAINER_ENV``: ``clearpaths``, the default, resets ``PATH`` and
drops ``LD_LIBRARY_PATH``, ``PYTHONPATH``, ``LD_PRELOAD``; ``clearall`` adds ``--cleanenv``;
``keepall`` clears nothing; ``gwmsset``/``osgset``/``condorset``/``clear`` as in GlideinWMS;
``GLIDEIN_CONTAINER_ENV_CLEARLIST`` names variables cleared in any case). The re-entry marker
``GWMS_SINGULARITY_REEXEC=1`` and the GPU assignment variables always go in as both
``APPTAINERENV_X`` and ``SINGULARITYENV_X`` (the reference loses them under ``--cleanenv``),
and so do the GlideinWMS (and, when asked, OSG and HTCondor) variables under ``--cleanenv``.
Every ``APPTAINER*``/``SINGULARITY*`` variable present at job start (set by the job: the
runtime reads ``APPTAINER_BIND``, ``APPTAINER_BINDPATH``, overlays, mounts, ``--containall``
and every other option from the environment, and ``APPTAINERENV_X`` sets ``X`` inside) is
dropped (a warning names those with a value), except ``SINGULARITY_DISABLE_PID_NAMESPACES``
(GlideinWMS's, no runtime option) and those the invocation sets itself. The runtime itself
always runs with ``PATH=/usr/local/bin:/usr/bin:/bin``: it looks up its helpers
(``squashfuse``, ``fakeroot``, ...) there, never in a ``PATH`` the job chose. ``X509_*`` and
``_CONDOR_*`` values naming a path in the sandbox go in rewritten to ``/srv``. The runtime's
caches and temporary files go under the glidein's local tmp dir (``APPTAINER_CACHEDIR``,
``APPTAINER_TMPDIR`` and the ``SINGULARITY_`` ones), never ``$HOME``.

On the per-job path: imports only ``os``.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping

    from glidein_plugins.jobstart.records import SetupState
    from glidein_plugins.protocol.htcondor.job_ad import Ad

INSIDE = "/srv"  # where the job's sandbox appears in the container
REEXEC = "GWMS_SINGULARITY_REEXEC"  # the re-entry marker the wrapper's second pass looks for
INSIDE_STEPS = "GLIDEIN_PLUGINS_INSIDE"  # scripts the wrapper's second pass sources (VO steps)
ENV_PREFIXES = ("APPTAINERENV_", "SINGULARITYENV_")
# what the runtime reads from its environment: options (APPTAINER_BIND, ...) and, with
# ENV_PREFIXES, the container's variables; none is taken from the job
RUNTIMES = ("APPTAINER", "SINGULARITY")
RUNTIME_PREFIXES = (*(f"{runtime}_" for runtime in RUNTIMES), *ENV_PREFIXES)
CLEAN_PATH = "/usr/local/bin:/usr/bin:/bin"  # PATH once cleared
FUNCTION_PREFIX = "BASH_FUNC_"  # an exported bash function: BASH_FUNC_name%%=() { ...; }
PATH_VARIABLES = ("PATH", "LD_LIBRARY_PATH", "PYTHONPATH", "LD_PRELOAD")
RUNTIME_DIRS = (("CACHEDIR", "cache"), ("TMPDIR", "tmp"))  # under TMP_DIR/apptainer
DISABLE_PID = "SINGULARITY_DISABLE_PID_NAMESPACES"
# GlideinWMS's env_preserve lists: kept under --cleanenv (gwmsset always, osgset when asked)
GWMS_SET = ("GWMS_SINGULARITY_REEXEC", "GLIDEIN_Proxy_URL", "MODULE_USE",
            "InitializeModulesEnv", "XRD_PLUGINCONFDIR", "POSIXSTASHCACHE", "STASHCACHE",
            "STASHCACHE_WRITABLE", "LoadModules", "GWMS_AUX_SUBDIR", "GWMS_BASE_SUBDIR",
            "GWMS_SUBDIR", "GWMS_DIR")
OSG_SET = ("OSG_SINGULARITY_REEXEC", "_CHIRP_DELAYED_UPDATE_PREFIX", "APPTAINER_WORKDIR",
           "CONDOR_PARENT_ID", "GLIDEIN_ResourceName", "GLIDEIN_Site", "HAS_SINGULARITY",
           "http_proxy", "InitializeModulesEnv", "LIGO_DATAFIND_SERVER", "OSG_MACHINE_GPUS",
           "OSG_SINGULARITY_AUTOLOAD", "OSG_SINGULARITY_BIND_CVMFS", "OSG_SINGULARITY_CLEAN_ENV",
           "OSG_SINGULARITY_IMAGE", "OSG_SINGULARITY_IMAGE_DEFAULT",
           "OSG_SINGULARITY_IMAGE_HUMAN", "OSG_SINGULARITY_OUTSIDE_PWD", "OSG_SINGULARITY_PATH",
           "OSG_SITE_NAME", "OSGVO_PROJECT_NAME", "OSGVO_SUBMITTER", "OSG_WN_TMP",
           "SINGULARITY_WORKDIR", "TZ", "X509_USER_CERT", "X509_USER_KEY",
           "X509_USER_PROXY")
ENV_OPTIONS = ("clearpaths", "clearall", "keepall", "clear", "gwmsset", "osgset", "condorset")
REWRITTEN_PREFIXES = ("X509_", "_CONDOR_")  # values naming a sandbox path become /srv/...
_PATH_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-+~/")
_VARIABLE_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_VARIABLE_CHARS = _VARIABLE_START | frozenset("0123456789")


def runtime_environment(environ: Mapping[str, str], state: SetupState, job_ad: Ad,
                        sandbox: str, *, options: frozenset[str], cleanenv: bool,
                        warnings: list[str], notes: list[str]) -> dict[str, str]:
    """The runtime's whole environment, from the job's ``environ``; ``options``: the entry's
    ``GLIDEIN_CONTAINER_ENV`` (``env_options``); ``cleanenv``: the runtime runs with
    ``--cleanenv``. What was dropped goes to ``warnings``, what was cleared to ``notes``."""
    env = {name: value for name, value in environ.items()
           if not runtime_variable(name) and not is_function(name)}
    replaced = {f"{runtime}_{variable}" for runtime in RUNTIMES
                for variable, _ in RUNTIME_DIRS}
    dropped = sorted(name for name, value in environ.items()
                     if runtime_variable(name) and name not in replaced and value)
    if dropped:
        warnings.append(f"not passed into the container (set by the job?): "
                        f"{', '.join(dropped)}")
    cleared = []
    if options & {"clearall", "clearpaths"}:
        for name in PATH_VARIABLES:
            if name in env:
                cleared.append(name)
                del env[name]
    env["PATH"] = CLEAN_PATH  # the runtime's own: never the job's (helpers are looked up)
    for name in names_in(state.container_env_clearlist):
        if env.pop(name, None) is not None:
            cleared.append(name)
    if cleared:
        notes.append(f"cleared: {', '.join(cleared)}")
    kept = {REEXEC: "1"}
    from glidein_plugins.gpu.container import PRESERVED  # noqa: PLC0415

    kept.update((name, env[name]) for name in (*PRESERVED, INSIDE_STEPS) if name in env)
    if cleanenv:
        wanted = list(GWMS_SET)
        if "osgset" in options:
            wanted += OSG_SET
        if "condorset" in options:
            wanted += [name for name in env if name.startswith("_CONDOR_")]
            wanted += environment_names(job_ad)
        kept.update((name, env[name]) for name in wanted if name in env and name not in kept)
    for name, value in env.items():
        if name.startswith(REWRITTEN_PREFIXES):
            inside = to_inside(value, sandbox)
            if inside != value or (cleanenv and name in kept):
                kept[name] = inside
    for name, value in kept.items():
        for prefix in ENV_PREFIXES:
            env[prefix + name] = value
    tmp = state.tmp_dir or os.path.join(state.work_dir or sandbox, "tmp")
    for runtime in RUNTIMES:
        for variable, sub in RUNTIME_DIRS:
            env[f"{runtime}_{variable}"] = os.path.join(tmp, "apptainer", sub)
    return env


def is_function(name: str) -> bool:
    """Whether ``name`` carries an exported shell function (bash imports ``BASH_FUNC_*``,
    even as ``sh``, and runs it before builtins and PATH)."""
    return name.startswith(FUNCTION_PREFIX)


def exported_functions(environ: Mapping[str, str]) -> list[str]:
    """The names of ``environ`` that carry an exported shell function, sorted."""
    return sorted(name for name in environ if is_function(name))


def runtime_variable(name: str) -> bool:
    """Whether the runtime reads ``name``: every ``APPTAINER_*``, ``SINGULARITY_*``,
    ``APPTAINERENV_*`` and ``SINGULARITYENV_*`` variable, except
    ``SINGULARITY_DISABLE_PID_NAMESPACES`` (GlideinWMS's, for the wrapper)."""
    return name.startswith(RUNTIME_PREFIXES) and name != DISABLE_PID


def env_options(text: str, warnings: list[str] | None = None) -> frozenset[str]:
    """``GLIDEIN_CONTAINER_ENV`` normalised as GlideinWMS's ``env_process_options`` does."""
    names = {name.strip().lower() for name in text.split(",") if name.strip()}
    if not names:
        return frozenset({"clearpaths"})
    unknown = sorted(names - set(ENV_OPTIONS))
    if unknown and warnings is not None:
        warnings.append(f"GLIDEIN_CONTAINER_ENV: unknown option {', '.join(unknown)} ignored "
                        f"(known: {', '.join(ENV_OPTIONS)})")
    if "clear" in names:
        names |= {"clearall", "gwmsset", "osgset", "condorset"}
    if "osgset" in names:
        names |= {"condorset", "gwmsset"}
    if "condorset" in names:
        names.add("gwmsset")
    if "keepall" in names and any(name.startswith("clear") for name in names):
        if warnings is not None:
            warnings.append("GLIDEIN_CONTAINER_ENV: keepall ignored: a clear option is present")
        names.discard("keepall")
    return frozenset(names & set(ENV_OPTIONS))


def names_in(text: str) -> list[str]:
    """The variable names of a comma (or space) separated list."""
    return [name for name in text.replace(",", " ").split() if _is_variable(name)]


def environment_names(job_ad: Ad) -> list[str]:
    """The variables the job's ``Environment`` (HTCondor's V2 syntax: ``A=1 B='x y'``) or
    old ``Env`` (``A=1;B=2``) sets."""
    names = []
    text = job_ad.string("Environment")
    if text is not None:
        for token in _v2_tokens(text):
            name, equals, _ = token.partition("=")
            if equals and _is_variable(name):
                names.append(name)
    old = job_ad.string("Env")
    if old is not None:
        for item in old.split(";"):
            name, equals, _ = item.partition("=")
            if equals and _is_variable(name.strip()):
                names.append(name.strip())
    return list(dict.fromkeys(names))


def _v2_tokens(text: str) -> list[str]:
    """Split V2 environment text on blanks outside single quotes (``''`` is a quote)."""
    tokens, current, quoted, index, started = [], [], False, 0, False
    while index < len(text):
        char = text[index]
        if char == "'":
            if quoted and text[index + 1:index + 2] == "'":
                current.append("'")
                index += 1
            else:
                quoted = not quoted
            started = True
        elif char in " \t" and not quoted:
            if started:
                tokens.append("".join(current))
            current, started = [], False
        else:
            current.append(char)
            started = True
        index += 1
    if started:
        tokens.append("".join(current))
    return tokens


def to_inside(text: str, sandbox: str) -> str:
    """``text`` with every path in the sandbox (``sandbox`` itself, or below it) as the
    container sees it, under ``/srv``: ``SANDBOX/x`` -> ``/srv/x``, ``--out=SANDBOX`` ->
    ``--out=/srv``; ``SANDBOX2`` or ``/x/SANDBOX`` are other paths and stay."""
    if not sandbox or sandbox == "/" or sandbox not in text:
        return text
    parts, index = [], 0
    while True:
        found = text.find(sandbox, index)
        if found < 0:
            break
        after = found + len(sandbox)
        starts = found == 0 or text[found - 1] not in _PATH_CHARS
        ends = after == len(text) or text[after] == "/" or text[after] not in _PATH_CHARS
        if starts and ends:
            parts += [text[index:found], INSIDE]
            index = after
        else:
            parts.append(text[index:found + 1])
            index = found + 1
    parts.append(text[index:])
    return "".join(parts)


def truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _is_variable(name: str) -> bool:
    return bool(name) and name[0] in _VARIABLE_START and all(
        char in _VARIABLE_CHARS for char in name)


