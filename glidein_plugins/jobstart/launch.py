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
- **Environment**: see ``launch_env`` (the runtime's whole environment).
- **Arguments** stay an argv from end to end: each is passed as one argument, never split,
  joined or seen by a shell; a sandbox path in one (the executable itself, ``--out=SANDBOX/x``)
  is rewritten to ``/srv``.

Per-job path: imports only ``os`` and the lean ``setup_state``/``launch_env``/``job_ad`` modules at
load time.
"""

from __future__ import annotations

import os

from glidein_plugins.jobstart.launch_env import (
    DISABLE_PID,
    INSIDE,
    env_options,
    runtime_environment,
    to_inside,
    truthy,
)
from glidein_plugins.jobstart.records import Record, SetupState
from glidein_plugins.node.text import one_line
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

# what must not reach a nested runtime (devpts, /proc), or one without PID namespaces
CONTAIN_OPTIONS = ("-C", "--containall", "-c", "--contain", "-i", "--ipc")
PID_OPTIONS = ("-p", "--pid")
CLEANENV_OPTIONS = ("-e", "--cleanenv", "-C", "--containall")
NO_GPU = frozenset({"", "-1", "na", "n/a", "none", "void", "10000"})  # gpu.assignment's
# the slot's GPU assignment, machine ad first, and HTCondor's names for NVIDIA devices
GPU_ASSIGNMENT = ("_CONDOR_AssignedGPUs", "CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES",
                  "HIP_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL")
NVIDIA_NAMES = ("CUDA", "GPU-", "MIG-")


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
        if truthy(self.environ.get(DISABLE_PID, "")):
            self.notes.append(f"no --pid: {DISABLE_PID} is set")
            return False
        if self.job_ad.boolean(DISABLE_PID) or truthy(self.job_ad.string(DISABLE_PID) or ""):
            self.notes.append(f"no --pid: the job sets {DISABLE_PID}")
            return False
        return True

    def gpu_flags(self) -> list[str]:
        assigned = self.gpu_assignment()
        asked = self.job_ad.boolean("GPU_USE") or truthy(self.job_ad.string("GPU_USE") or "")
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
        return runtime_environment(self.environ, self.state, self.job_ad, self.sandbox,
                                   options=self.env_options, cleanenv=self.cleanenv,
                                   warnings=self.warnings, notes=self.notes)


def as_ad(ad: Mapping[str, str]) -> Ad:
    """``ad`` as a ``job_ad.Ad`` (a plain mapping of name -> expression text is wrapped)."""
    return ad if isinstance(ad, Ad) else Ad(ad)


def bind_text(source: str, target: str = "", options: str = "") -> str:
    """``src[:dst[:opts]]``, the runtime's ``--bind`` syntax."""
    text = source
    if (target and target != source) or options:
        text += f":{target or source}"
    if options:
        text += f":{options}"
    return text


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
