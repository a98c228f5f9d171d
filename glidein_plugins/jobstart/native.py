"""HTCondor-native container mode: the glidein's HTCondor starts every job's container itself.

Selected per entry by the ``launch`` setting ``native: true``. After a successful setup that
proved a runtime and found a usable image, the glidein's startd is configured with HTCondor's
own knobs (the starter then runs ``apptainer exec ... IMAGE JOB``, which is what makes
``condor_ssh_to_job`` work), and the job wrapper does not start a container itself:

=======================================  ==================================================
``SINGULARITY``                          the proven binary
``SINGULARITY_JOB``                      REQUIRED: ``True``; PREFERRED: jobs that name an image,
                                         and the others unless they opt out (OSG's
                                         ``SingularityAutoLoad = False``) or a periodic
                                         re-check found the runtime broken (``HAS_SINGULARITY``)
``SINGULARITY_IMAGE_EXPR``               the job's ``SingularityImage`` when the entry's image
                                         restrictions allow it (``/cvmfs`` rebased on
                                         ``CVMFS_MOUNT_DIR``), ``error`` when they do not (the
                                         starter then refuses to start the job), else the
                                         node's default image
``SINGULARITY_BIND_EXPR``                the validated binds, ``src[:dst[:ro]]`` separated by
                                         spaces, as one ClassAd string
``SINGULARITY_TARGET_DIR``               ``/srv``
``SINGULARITY_EXTRA_ARGUMENTS``          the ``launch`` setting ``extra_options``, and
                                         ``--rocm`` for slots with GPUs on an AMD node
``SINGULARITY_USE_PID_NAMESPACES``       what the probe found (``auto`` if it did not test
                                         it); False when the ``launch`` setting
                                         ``pid_namespaces`` is false
``SINGULARITY_IGNORE_MISSING_BIND_TARGET``  True when the runtime cannot bind onto a target
                                         missing in the image
=======================================  ==================================================

Here the knobs are computed (``build``); ``runs.native_config`` writes them. How the lines
reach the startd's config is GlideinWMS's own way for a setup script:
``condor_startup.sh`` writes the glidein's ``condor_config`` from scratch and, for every line
of condor_vars.lst, writes ``NAME=value`` with the value taken from glidein_config (type ``C``:
verbatim), exported to the machine ad or not. So each knob is a glidein_config value plus a
condor_vars line ``NAME C - + N N -`` (no machine attribute, not in the jobs' environment).
There is no other way in: the base ``condor_config`` names no config directory, and the
startd-cron include file is deleted by ``glidein_startup.sh`` when it registers its first
periodic script. Both files are written once each, atomically, under GlideinWMS's lock, the
condor_vars lines replacing their old selves: a rerun leaves exactly one line per knob, and a
rerun that does not select native mode empties the values (``condor_startup.sh`` skips a
variable without a value or default), so nothing of an earlier run stays in force.

Every value is checked before anything is written: no newline or control character, no
HTCondor config macro (``$(``), no ``'`` (``condor_startup.sh`` ``eval``s each value in single
quotes), no trailing ``\\``; text inside an expression is a ClassAd string literal
(:func:`glidein_plugins.protocol.htcondor.classad.quote`). A bind that HTCondor could not carry
(its bind list is
split on spaces and commas) is left out with the reason; a runtime path or default image that
cannot be written makes native mode impossible, and the wrapper launches the jobs instead.
``GLIDEIN_CONTAINER_LAUNCH`` (``native`` or ``wrapper``) tells jobs and Frontends which it is.

HTCondor always adds ``-C`` (or ``--contain --ipc --cleanenv`` without PID namespaces), which
fails inside an enclosing container; nested glideins rely on the job wrapper to drop them
(HTCondor >= 8.8.2 hands the wrapper the whole ``apptainer exec ...`` command line).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from glidein_plugins.container import binds, images
from glidein_plugins.protocol.glideinwms import glidein_config
from glidein_plugins.protocol.htcondor import classad
from glidein_plugins.spec.results import Bind, Facts, GpuDevice, Mode

PLUGIN = "launch"  # the settings section that selects the mode
SETTING = "native"
LAUNCH_ATTRIBUTE = "GLIDEIN_CONTAINER_LAUNCH"
TARGET_DIR = "/srv"
KNOBS = (
    "SINGULARITY",
    "SINGULARITY_JOB",
    "SINGULARITY_IMAGE_EXPR",
    "SINGULARITY_BIND_EXPR",
    "SINGULARITY_TARGET_DIR",
    "SINGULARITY_EXTRA_ARGUMENTS",
    "SINGULARITY_USE_PID_NAMESPACES",
    "SINGULARITY_IGNORE_MISSING_BIND_TARGET",
)
JOB_IMAGE = "TARGET.SingularityImage"
REMOTE_PATTERN = f"^({'|'.join(images.REMOTE_SCHEMES)})://"  # images.is_remote, as a regexp
DOTDOT_PATTERN = "(^|/)[.][.](/|$)"
CONTAIN_OPTIONS = ("-C", "--containall", "-c", "--contain", "-i", "--ipc", "-p", "--pid")


class NotPossible(ValueError):
    """Native mode cannot be configured on this node (the message says why)."""


@dataclass(frozen=True)
class NativeConfig:
    """The knobs (name -> config value, in ``KNOBS`` order) and notes for the trace."""

    knobs: Mapping[str, str]
    notes: tuple[str, ...] = ()


def _no_job_image(job: str) -> str:
    return f'(isUndefined({job}) || {job} =?= "")'


def job_expression(mode: Mode) -> str:
    """``SINGULARITY_JOB`` (MY: the slot, TARGET: the job): REQUIRED runs every job in a
    container; PREFERRED every job that names an image, and the others unless they opt out
    (``SingularityAutoLoad = False``) or the slot no longer has a working runtime."""
    if mode is Mode.REQUIRED:
        return "True"
    return (f"!{_no_job_image(JOB_IMAGE)} || "
            "(MY.HAS_SINGULARITY =!= False && TARGET.SingularityAutoLoad =!= False)")


def image_expression(default: str, restrictions: Iterable[str], cvmfs_root: str) -> str:
    """``SINGULARITY_IMAGE_EXPR``: the job's image when the restrictions allow it, rebased on
    the CVMFS root (``error`` when they do not), else ``default``.

    The rules of ``builtin.images.refusal`` for configured images: a registry URI only with
    ``remote``; otherwise an absolute path, in CVMFS (under ``cvmfs_root``) with ``cvmfs``;
    and never a path with a ``..`` component.
    """
    allowed = frozenset(restrictions)
    root = cvmfs_root.rstrip("/") or "/cvmfs"
    job = JOB_IMAGE
    rebased = job if root == "/cvmfs" else (
        f'ifThenElse(substr({job}, 0, 7) =?= "/cvmfs/", '
        f"strcat({classad.quote(root)}, substr({job}, 6)), {job})")
    local = f'substr({job}, 0, 1) =?= "/"'
    if "cvmfs" in allowed:
        local += f" && substr({rebased}, 0, {len(root) + 1}) =?= {classad.quote(root + '/')}"
    kinds = [f"({local})"]
    if "remote" in allowed:
        kinds.insert(0, f"regexp({classad.quote(REMOTE_PATTERN)}, {job})")
    permitted = f"({' || '.join(kinds)}) && !regexp({classad.quote(DOTDOT_PATTERN)}, {job})"
    return (f"ifThenElse({_no_job_image(job)}, {classad.quote(default)}, "
            f"ifThenElse({permitted}, {rebased}, error))")


def bind_problem(bind: Bind) -> str:
    """Why HTCondor's ``SINGULARITY_BIND_EXPR`` cannot carry ``bind`` ('' when it can)."""
    try:
        text = binds.format_bind(bind)
    except ValueError as exc:
        return str(exc)
    if any(char.isspace() or char == "," for char in text):
        return "HTCondor splits its bind list on spaces and commas"
    try:
        classad.check_value(classad.quote(text), "C")  # as it will stand in the expression
    except ValueError as exc:
        return str(exc)
    return ""


def bind_expression(chosen: Iterable[Bind]) -> tuple[str, list[str]]:
    """``SINGULARITY_BIND_EXPR`` for the binds HTCondor can carry, and a note for each other."""
    kept, notes = [], []
    for bind in chosen:
        why = bind_problem(bind)
        if why:
            notes.append(f"bind {bind.source}:{bind.destination} left out of "
                         f"SINGULARITY_BIND_EXPR: {why}")
        else:
            kept.append(binds.format_bind(bind))
    return classad.quote(" ".join(kept)), notes


def extra_arguments(gpus: Iterable[GpuDevice], options: Iterable[str] = (),
                    nested: bool = False) -> tuple[str, list[str]]:
    """``SINGULARITY_EXTRA_ARGUMENTS`` and a note for each option left out.

    HTCondor itself adds ``-C`` (or ``--contain --ipc --cleanenv``), the binds, and ``--nv``
    for a slot with GPUs; here come the entry's ``extra_options`` (those HTCondor could not
    split right, on whitespace, are left out; nested, the containment options too) and, on a
    node with AMD GPUs, ``--rocm`` for a slot that has GPUs (``AssignedGPUs``).
    """
    kept, notes = [], []
    for option in options:
        if nested and option in CONTAIN_OPTIONS:
            notes.append(f"extra option {option} left out: nested (already in a container)")
        elif not option or any(char.isspace() or char in "\"'" for char in option):
            notes.append(f"extra option {option!r} left out of SINGULARITY_EXTRA_ARGUMENTS: "
                         "HTCondor splits the arguments on whitespace")
        else:
            kept.append(option)
    plain = classad.quote(" ".join(kept))
    if any(device.vendor == "amd" for device in gpus):
        with_rocm = classad.quote(" ".join([*kept, "--rocm"]))
        return (f'ifThenElse(MY.AssignedGPUs =!= undefined && MY.AssignedGPUs =!= "", '
                f"{with_rocm}, {plain})"), notes
    return plain, notes


def _flag(value: bool | None, unknown: str) -> str:
    return unknown if value is None else classad.boolean(value)


def build(facts: Facts, restrictions: Iterable[str], cvmfs_root: str,
          extra_options: Iterable[str] = (), pid_namespaces: bool = True) -> NativeConfig:
    """The knobs for what setup found (``extra_options`` and ``pid_namespaces``: the entry's
    ``launch`` settings); NotPossible when the runtime's path or the default image cannot be
    written into the startd's config."""
    runtime, mode = facts.runtime, facts.mode
    if runtime is None or mode is None or not facts.has_singularity:
        raise NotPossible("no proven runtime and usable image")
    path = runtime.candidate.path
    if not path.startswith("/") or path != path.strip() or '"' in path:
        raise NotPossible(f"the runtime path {path!r} cannot be a SINGULARITY value")
    default = facts.image or next(iter(facts.images), None)
    if default is None:  # proven with a test image (issue 14): the wrapper runs own-image jobs
        raise NotPossible("no usable image for a default SINGULARITY_IMAGE_EXPR")
    features = runtime.features
    missing_target = features.get("missing_target")
    nested = bool(features.get("nested"))
    bind_expr, notes = bind_expression(facts.binds)
    extra, extra_notes = extra_arguments(facts.gpus, extra_options, nested)
    pid = features.get("pid_namespaces") if pid_namespaces else False
    knobs = {
        "SINGULARITY": path,
        "SINGULARITY_JOB": job_expression(mode.outcome),
        "SINGULARITY_IMAGE_EXPR": image_expression(default.uri, restrictions, cvmfs_root),
        "SINGULARITY_BIND_EXPR": bind_expr,
        "SINGULARITY_TARGET_DIR": TARGET_DIR,
        "SINGULARITY_EXTRA_ARGUMENTS": extra,
        "SINGULARITY_USE_PID_NAMESPACES": _flag(pid, "auto"),
        "SINGULARITY_IGNORE_MISSING_BIND_TARGET": classad.boolean(missing_target is not True),
    }
    for name, value in knobs.items():
        try:
            classad.check_value(value, "C")
            glidein_config.format_line(name, value)
        except ValueError as exc:
            raise NotPossible(f"{name} cannot be written: {exc}") from None
    notes += extra_notes
    if nested:
        notes.append("nested: HTCondor passes -C or --contain, which fail inside a container; "
                     "the job wrapper (hooks/glidein_plugins_wrapper.sh) must drop them")
    return NativeConfig(knobs, tuple(notes))
