"""The container invocation for one job: ``build(state, job, environ)``.

A pure function of what setup decided (``setup_state.SetupState``), the job (its argv, its job
and machine ads, its sandbox) and the environment the job wrapper received; the only thing it
runs is a bounded look at the real path of a local image the job asked for. It returns an
``Invocation`` (the runtime's argv and its whole environment, for ``os.execve``) or a
``Refusal`` (one line, and whether the job may run on the host instead).

Rules (GlideinWMS's ``singularity_lib.sh``, with its known gaps fixed):

- **Image.** The job's ``SingularityImage`` (a string literal), checked against the entry's
  ``SINGULARITY_IMAGE_RESTRICTIONS`` (``cvmfs``, the default: a local image must lie in CVMFS;
  ``remote``: registry URIs allowed); ``/cvmfs`` paths are rebased on ``CVMFS_MOUNT_DIR`` and a
  local image is replaced by its real path (one bounded child process), so that the job keeps
  one revision of a tag like ``:latest``; a forbidden or missing image is refused. Else the
  job's ``REQUIRED_OS`` meeting the entry's ``GLIDEIN_REQUIRED_OS``, in the job's order of
  preference (``images.preference``), the first platform with a usable image. Else the node's
  default image.
- **Options.** ``exec --home SANDBOX:/srv --pwd /srv --ipc --contain --pid [--nv|--rocm]
  [--cleanenv] [extra_options] --bind BINDS IMAGE COMMAND...``. ``--ipc``/``--contain`` only
  when the probe found them usable and setup found the glidein not nested (already in a
  container: "Multiple devpts instances unsupported"; never decided from the job's environment,
  where ``APPTAINER_CONTAINER`` can be forged); ``--pid`` only with them, when the probe found PID
  namespaces usable, the ``pid_namespaces`` setting is on and neither the environment nor the
  job ad sets ``SINGULARITY_DISABLE_PID_NAMESPACES``. Nested, ``-C``/``--containall`` and the
  like are dropped from ``extra_options`` too. ``--nv`` for NVIDIA and ``--rocm`` for AMD
  devices setup found usable, when the slot has GPUs (``AssignedGPUs`` in the machine ad, or an
  assignment variable naming a device) or the job sets ``GPU_USE``.
- **Environment** (``GLIDEIN_CONTAINER_ENV``: ``clearpaths``, the default, resets ``PATH`` and
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
- **Arguments** stay an argv from end to end: each is passed as one argument, never split,
  joined or seen by a shell; a sandbox path in one (the executable itself, ``--out=SANDBOX/x``)
  is rewritten to ``/srv``.

Per-job path: imports only ``os`` and the lean ``setup_state``/``job_ad`` modules at load time.
"""

from __future__ import annotations

import os

from glidein_plugins.jobstart.setup_state import Record, SetupState
from glidein_plugins.protocol.htcondor.job_ad import Ad

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Protocol, Union

    class JobLike(Protocol):
        """What ``build`` reads of a job: ``JobRequest`` here or in ``results``."""

        @property
        def argv(self) -> Sequence[str]: ...
        @property
        def job_ad(self) -> Mapping[str, str]: ...
        @property
        def machine_ad(self) -> Mapping[str, str]: ...
        @property
        def cwd(self) -> str: ...

    Launch = Union["Invocation", "Refusal"]

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
# what must not reach a nested runtime (devpts, /proc), or one without PID namespaces
CONTAIN_OPTIONS = ("-C", "--containall", "-c", "--contain", "-i", "--ipc")
PID_OPTIONS = ("-p", "--pid")
CLEANENV_OPTIONS = ("-e", "--cleanenv", "-C", "--containall")
NO_GPU = frozenset({"", "-1", "na", "n/a", "none", "void", "10000"})  # gpu.assignment's
# the slot's GPU assignment, machine ad first, and HTCondor's names for NVIDIA devices
GPU_ASSIGNMENT = ("_CONDOR_AssignedGPUs", "CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES",
                  "HIP_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL")
NVIDIA_NAMES = ("CUDA", "GPU-", "MIG-")
_PATH_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-+~/")
_VARIABLE_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_VARIABLE_CHARS = _VARIABLE_START | frozenset("0123456789")


class JobRequest(Record):
    """A job about to start: ``results.JobRequest`` without importing ``results`` (``build``
    takes either)."""

    __slots__ = ("argv", "cwd", "job_ad", "machine_ad")
    argv: tuple[str, ...]
    job_ad: Mapping[str, str]
    machine_ad: Mapping[str, str]
    cwd: str

    def __init__(self, argv: Iterable[str], job_ad: Mapping[str, str] | None = None,
                 machine_ad: Mapping[str, str] | None = None, cwd: str = "") -> None:
        self._init(argv=tuple(argv), job_ad=job_ad if job_ad is not None else Ad(),
                   machine_ad=machine_ad if machine_ad is not None else Ad(), cwd=cwd)


class Invocation(Record):
    """Start the job in a container: ``os.execve(argv[0], argv, env)``.

    ``env`` is the runtime's whole environment; ``image`` the image chosen; ``warnings`` are
    for the job's stderr; ``notes`` say what was decided and why.
    """

    __slots__ = ("argv", "env", "image", "notes", "warnings")
    ok = True
    argv: tuple[str, ...]
    env: Mapping[str, str]
    image: str
    warnings: tuple[str, ...]
    notes: tuple[str, ...]

    def __init__(self, argv: Iterable[str], env: Mapping[str, str], image: str,
                 warnings: Iterable[str] = (), notes: Iterable[str] = ()) -> None:
        self._init(argv=tuple(argv), env=dict(env), image=image, warnings=tuple(warnings),
                   notes=tuple(notes))


class Refusal(Record):
    """The job cannot start in a container: ``reason`` (one line); ``fallback_to_host`` when
    it may run on the host instead (the mode is not REQUIRED, and the job did not ask for an
    image)."""

    __slots__ = ("fallback_to_host", "notes", "reason", "warnings")
    ok = False
    reason: str
    fallback_to_host: bool
    warnings: tuple[str, ...]
    notes: tuple[str, ...]

    def __init__(self, reason: str, fallback_to_host: bool = False,
                 warnings: Iterable[str] = (), notes: Iterable[str] = ()) -> None:
        self._init(reason=one_line(reason), fallback_to_host=fallback_to_host,
                   warnings=tuple(warnings), notes=tuple(notes))


class _Refused(Exception):
    """Raised inside ``build`` to refuse; turned into a ``Refusal``."""


def build(state: SetupState, job: JobLike, environ: Mapping[str, str]) -> Launch:
    """How to start ``job`` (see the module docstring for every rule)."""
    return _Builder(state, job, environ).build()


class _Builder:
    def __init__(self, state: SetupState, job: JobLike, environ: Mapping[str, str]) -> None:
        self.state = state
        self.job = job
        self.environ = environ
        self.job_ad = as_ad(job.job_ad)
        self.machine_ad = as_ad(job.machine_ad)
        self.warnings: list[str] = []
        self.notes: list[str] = []
        self.sandbox = (job.cwd or os.getcwd()).rstrip("/") or "/"
        asked = self.job_ad.string("SingularityImage")
        self.asked_image = asked.strip() if asked else ""
        self.asks_image = bool(self.asked_image) or (
            asked is None and "SingularityImage" in self.job_ad)
        self.env_options = env_options(state.container_env, self.warnings)
        self.cleanenv = False

    def build(self) -> Launch:
        try:
            return self._build()
        except _Refused as refused:
            # the host, never for REQUIRED nor for a job that asked for an image
            fallback = self.state.mode.outcome != "REQUIRED" and not self.asks_image
            return Refusal(str(refused), fallback, self.warnings, self.notes)

    def _build(self) -> Invocation:
        state = self.state
        if not state.wants_container:
            raise _Refused(f"containers are not used on this glidein (mode "
                           f"{state.mode.outcome})")
        runtime = state.runtime
        if runtime is None or not state.has_singularity:
            why = state.reason or "it has no usable runtime or image"
            raise _Refused(f"no working container runtime on this glidein: {why}")
        if ":" in self.sandbox:
            raise _Refused(f"the job's sandbox {self.sandbox} holds ':', which --home cannot "
                           "take")
        image = self.image()
        argv = [runtime.path, "exec", *self.options(), image,
                *(to_inside(arg, self.sandbox) for arg in self.job.argv)]
        return Invocation(argv, self.environment(), image, self.warnings, self.notes)

    # -- the image ------------------------------------------------------------------------------

    def image(self) -> str:
        state = self.state
        if self.asks_image:
            return self.job_image()
        required = self.job_ad.string("REQUIRED_OS")
        if required is not None and required.strip():
            from glidein_plugins.container.images import parse_platforms, preference  # noqa: PLC0415

            platforms = preference(parse_platforms(state.required_os),
                                   parse_platforms(required))
            by_platform = {image.platform: image for image in state.images}
            for platform in platforms:
                if platform in by_platform:
                    self.notes.append(f"image for REQUIRED_OS={required} ({platform}): "
                                      f"{by_platform[platform].uri}")
                    return by_platform[platform].uri
            raise _Refused(
                f"no image here for the job's REQUIRED_OS={required} (GLIDEIN_REQUIRED_OS="
                f"{state.required_os or 'any'}; images: "
                f"{', '.join(by_platform) or 'none'})")
        if state.default_image is None:
            raise _Refused("the job names no image and this glidein has no default image")
        self.notes.append(f"default image ({state.default_image.platform}): "
                          f"{state.default_image.uri}")
        return state.default_image.uri

    def job_image(self) -> str:
        """The job's ``SingularityImage``, checked against the restrictions, resolved."""
        asked = self.asked_image
        if not asked:
            raise _Refused(f"the job's SingularityImage is not a string: "
                           f"{self.job_ad.get('SingularityImage', '')}")
        from glidein_plugins.container.images import is_remote, rebase_cvmfs, under  # noqa: PLC0415

        state = self.state
        root = state.cvmfs_root.rstrip("/") or "/cvmfs"
        allowed = set(state.restrictions)
        uri = rebase_cvmfs(asked, root)
        if is_remote(uri):
            if "remote" not in allowed:
                raise _Refused(f"the job's SingularityImage {asked} is a remote image, and "
                               "this entry allows local images only "
                               "(SINGULARITY_IMAGE_RESTRICTIONS has no 'remote')")
            self.notes.append(f"the job's image: {uri}")
            return uri
        if not uri.startswith("/"):
            raise _Refused(f"the job's SingularityImage {asked} is neither an absolute path "
                           "nor a registry URI")
        if "cvmfs" in allowed and not under(uri, root):
            raise _Refused(f"the job's SingularityImage {asked} is not in CVMFS ({root}), and "
                           "this entry allows CVMFS images only "
                           "(SINGULARITY_IMAGE_RESTRICTIONS has 'cvmfs')")
        real, why = resolve(uri, root, float(state.setting("check_timeout", 20.0)))
        if why:
            raise _Refused(f"the job's SingularityImage {asked}: {why}")
        if "cvmfs" in allowed and not under(real, root):
            raise _Refused(f"the job's SingularityImage {asked} leads to {real}, which is "
                           f"not in CVMFS ({root})")
        shown = uri if real == uri else f"{uri} -> {real}"
        self.notes.append(f"the job's image: {shown}")
        return real

    # -- the options ----------------------------------------------------------------------------

    def options(self) -> list[str]:
        state = self.state
        runtime = state.runtime
        assert runtime is not None
        nested = self.nested()
        contain = runtime.feature("contain", True) and not nested
        pid = contain and self.pid_namespaces()
        extra = [str(option) for option in state.setting("extra_options", []) or []]
        dropped = [option for option in extra
                   if (not contain and option in CONTAIN_OPTIONS)
                   or (not pid and option in PID_OPTIONS)]
        if dropped:
            why = f"nested ({nested})" if nested else "not usable here"
            self.warnings.append(f"runtime options {' '.join(dropped)} dropped: {why}")
            extra = [option for option in extra if option not in dropped]
        options = ["--home", f"{self.sandbox}:{INSIDE}", "--pwd", INSIDE]
        if contain:
            options += ["--ipc", "--contain"] + (["--pid"] if pid else [])
        options += self.gpu_flags()
        self.cleanenv = "clearall" in self.env_options or any(
            option in CLEANENV_OPTIONS for option in extra)
        if "clearall" in self.env_options and not {"-e", "--cleanenv"} & set(extra):
            options.append("--cleanenv")
        options += extra
        binds = ",".join(bind_text(bind.source, bind.target, bind.options)
                         for bind in state.binds)
        if binds:
            options += ["--bind", binds]
        return options

    def nested(self) -> str:
        """Why the glidein is already inside a container ('' when it is not): what setup's
        probe found, never the job's ``APPTAINER_CONTAINER`` (HTCondor gives a job none of the
        glidein's own environment, so it could only be the job's, asking for no --contain)."""
        runtime = self.state.runtime
        if runtime is not None and runtime.feature("nested"):
            return runtime.reasons.get("nested", "") or "found nested at setup"
        return ""

    def pid_namespaces(self) -> bool:
        runtime = self.state.runtime
        if runtime is None or not runtime.feature("pid_namespaces", True):
            why = runtime.reasons.get("pid_namespaces", "") if runtime is not None else ""
            self.notes.append("no --pid: not usable here" + (f" ({why})" if why else ""))
            return False
        if self.state.setting("pid_namespaces", True) is False:
            self.notes.append("no --pid: the launch setting pid_namespaces is off")
            return False
        if _truthy(self.environ.get(DISABLE_PID, "")):
            self.notes.append(f"no --pid: {DISABLE_PID} is set")
            return False
        if self.job_ad.boolean(DISABLE_PID) or _truthy(self.job_ad.string(DISABLE_PID) or ""):
            self.notes.append(f"no --pid: the job sets {DISABLE_PID}")
            return False
        return True

    def gpu_flags(self) -> list[str]:
        assigned = self.gpu_assignment()
        asked = self.job_ad.boolean("GPU_USE") or _truthy(self.job_ad.string("GPU_USE") or "")
        if not assigned and not asked:
            return []
        from glidein_plugins.gpu.container import FLAGS  # noqa: PLC0415

        why = assigned or "the job sets GPU_USE"
        vendors = {str(gpu.get("vendor", "")) for gpu in self.state.gpus}
        flags = [flag for vendor, flag in FLAGS if vendor in vendors]
        if not flags and assigned and any(
                token.strip().upper().startswith(NVIDIA_NAMES)
                for token in assigned.partition("=")[2].split(",")):
            self.notes.append(f"--nv: {why}; setup found no GPU, but HTCondor names NVIDIA "
                              "devices")
            return ["--nv"]
        if not flags:
            self.warnings.append(f"GPUs expected ({why}), but setup found no usable NVIDIA "
                                 "or AMD device: no --nv or --rocm")
            return []
        self.notes.append(f"{' '.join(flags)}: {why}")
        return flags

    def gpu_assignment(self) -> str:
        """``NAME=value`` of the first variable assigning the slot GPUs ('' when none does)."""
        found = self.machine_ad.string("AssignedGPUs")
        if found is not None and found.strip().lower() not in NO_GPU:
            return f"AssignedGPUs={found.strip()}"
        for name in GPU_ASSIGNMENT:
            value = self.environ.get(name, "").strip()
            if value.lower() not in NO_GPU:
                return f"{name}={value}"
        return ""

    # -- the environment ------------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        """The runtime's whole environment."""
        environ, state, options = self.environ, self.state, self.env_options
        env = {name: value for name, value in environ.items()
               if not runtime_variable(name) and not is_function(name)}
        replaced = {f"{runtime}_{variable}" for runtime in RUNTIMES
                    for variable, _ in RUNTIME_DIRS}
        dropped = sorted(name for name, value in environ.items()
                         if runtime_variable(name) and name not in replaced and value)
        if dropped:
            self.warnings.append(f"not passed into the container (set by the job?): "
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
            self.notes.append(f"cleared: {', '.join(cleared)}")
        kept = {REEXEC: "1"}
        from glidein_plugins.gpu.container import PRESERVED  # noqa: PLC0415

        kept.update((name, env[name]) for name in (*PRESERVED, INSIDE_STEPS) if name in env)
        if self.cleanenv:
            wanted = list(GWMS_SET)
            if "osgset" in options:
                wanted += OSG_SET
            if "condorset" in options:
                wanted += [name for name in env if name.startswith("_CONDOR_")]
                wanted += environment_names(self.job_ad)
            kept.update((name, env[name]) for name in wanted if name in env and name not in kept)
        for name, value in env.items():
            if name.startswith(REWRITTEN_PREFIXES):
                inside = to_inside(value, self.sandbox)
                if inside != value or (self.cleanenv and name in kept):
                    kept[name] = inside
        for name, value in kept.items():
            for prefix in ENV_PREFIXES:
                env[prefix + name] = value
        tmp = state.tmp_dir or os.path.join(state.work_dir or self.sandbox, "tmp")
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


def as_ad(ad: Mapping[str, str]) -> Ad:
    """``ad`` as a ``job_ad.Ad`` (a plain mapping of name -> expression text is wrapped)."""
    return ad if isinstance(ad, Ad) else Ad(ad)


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


def bind_text(source: str, target: str = "", options: str = "") -> str:
    """``src[:dst[:opts]]``, the runtime's ``--bind`` syntax."""
    text = source
    if (target and target != source) or options:
        text += f":{target or source}"
    if options:
        text += f":{options}"
    return text


def one_line(text: str) -> str:
    """``text`` on one line (HTCondor's wrapper error file must not hold more)."""
    return " ".join(text.split())


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _is_variable(name: str) -> bool:
    return bool(name) and name[0] in _VARIABLE_START and all(
        char in _VARIABLE_CHARS for char in name)


def resolve(path: str, cvmfs_root: str, timeout: float) -> tuple[str, str]:
    """``(real path, '')`` of a local image, or ``('', why not)``: missing, a symlink loop,
    or no answer within ``timeout`` seconds (a stale mount; the child's group is killed)."""
    from glidein_plugins.node import commands, cvmfs_realpath  # noqa: PLC0415

    result = commands.run(cvmfs_realpath.argv([path], cvmfs_root), timeout=timeout)
    answer = cvmfs_realpath.answers([path], result.stdout).get(path)
    if answer is not None:
        return answer
    if result.timed_out:
        return "", f"could not be checked within {timeout:g} s (stale CVMFS or network mount?)"
    return "", f"could not be checked: {result.reason or 'no answer'}"
