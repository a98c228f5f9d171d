"""Hook specifications, one per glidein phase, in the order the runner calls them.

Every hook receives ``context`` (the entry, glidein_config values, settings, command runner,
decision trace) and ``facts`` (what earlier phases decided); an implementation may accept only
the arguments it needs. Plugins are registered built-ins first, then entry-point plugins, then
site drop-ins, and pluggy calls the last registered first: a VO or site plugin is asked before
the built-ins. ``tryfirst``/``trylast`` change that; hook wrappers are refused.
The runner calls each implementation on its own, so a plugin that raises or overruns the time
budget is recorded (with its name and distribution) and the phase's policy decides what follows.

Run order: negotiate the mode first (a DISABLE or NEVER outcome must not spend time probing
binaries), then the images (the runtime is proven by running one), then find and prove a
runtime, then GPUs and libraries (binds may depend on them), then binds, then attributes. The
job hook runs at job start, not at setup.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pluggy

from glidein_plugins.spec.results import (
    Attribute,
    Bind,
    BindVerdict,
    ContainerInvocation,
    Facts,
    GpuDevice,
    Image,
    JobRequest,
    Library,
    ModeDecision,
    RuntimeCandidate,
    RuntimeProbe,
)

if TYPE_CHECKING:
    from glidein_plugins.spec.context import Context

PROJECT = "glidein_plugins"
hookspec = pluggy.HookspecMarker(PROJECT)


# ---------------------------------------------------------------------------------------------
# Phase 1: mode negotiation
# ---------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def glidein_mode_negotiate(context: Context, facts: Facts) -> ModeDecision | None:
    """Decide the Singularity mode from the Frontend's and the Factory's wishes.

    The built-in ``mode`` plugin applies the GlideinWMS table to ``GLIDEIN_Singularity_Use``
    and ``GLIDEIN_SINGULARITY_REQUIRE`` (``trylast``). An outcome of FAIL stops the glidein with
    VO_Config; no decision at all is a Config failure.

    :param context: the run's context.
    :param facts: empty at this point.
    :return: the decision. Stops at first non-None result (``firstresult``). A plugin that
        raises or returns something else stops the glidein (Config): without a mode nothing
        else can be decided.
    """


# ---------------------------------------------------------------------------------------------
# Phase 2: images (only when the mode is PREFERRED or REQUIRED)
# ---------------------------------------------------------------------------------------------


@hookspec
def glidein_images_contribute(context: Context, facts: Facts) -> Iterable[Image] | None:
    """Contribute entries of the images dict (platform key -> image URI).

    Called only for PREFERRED and REQUIRED, before the runtime is looked for (it is proven with
    one of these images). The built-in ``images`` offers the configured images usable here.

    :param facts: holds the mode decision.
    :return: images. All plugins are asked; for each platform the first contribution in call
        order wins (VO plugins are called before the built-ins, so they override them); the
        others are noted in the trace.
    """


@hookspec(firstresult=True)
def glidein_image_select(
    context: Context, facts: Facts, platforms: Sequence[str]
) -> Image | None:
    """Choose the image for a list of acceptable platforms, in preference order.

    The runner asks it at setup for the node's platforms (the entry's ``GLIDEIN_REQUIRED_OS``
    and the Frontend's ``REQUIRED_OS``, in preference order) and records the choice as
    ``facts.image``: the node's default image, the first one the runtime is tested with. At
    job start the built-in ``launch`` chooses a job's image by the same rule (preference order
    kept) without calling the hook. The built-in ``images`` returns the usable image of the
    first platform it has.

    :param facts: ``facts.images`` holds the usable images.
    :param platforms: platform keys, most preferred first.
    :return: the chosen image, or None to leave the choice to the next plugin. Stops at first
        non-None result (``firstresult``).
    """


# ---------------------------------------------------------------------------------------------
# Phase 3: container runtime (only when the mode is PREFERRED or REQUIRED)
# ---------------------------------------------------------------------------------------------


@hookspec
def glidein_runtime_discover(context: Context, facts: Facts) -> Iterable[RuntimeCandidate] | None:
    """Propose container runtime binaries (apptainer, singularity) worth probing.

    Called only for PREFERRED and REQUIRED. The built-in ``discovery`` follows GlideinWMS's
    search order, with priorities 100 to 700.

    :param context: the run's context.
    :param facts: holds the mode decision and the images.
    :return: candidates, each with a ``source`` label and a ``priority`` (lower is tried first;
        equal priorities keep call order). All plugins are asked; duplicates of one path are
        probed once.
    """


@hookspec(firstresult=True)
def glidein_runtime_probe(
    context: Context, facts: Facts, candidate: RuntimeCandidate
) -> RuntimeProbe | None:
    """Prove one candidate works: version, flavour, privilege mode, features.

    The runner probes candidates in priority order until one is ``ok``; every rejected one is
    kept in ``facts.rejected_runtimes`` with its reason; a plugin that fails here rejects the
    candidate. The built-in ``probe`` runs the version commands and a container test.

    :param facts: ``facts.image`` is the node's default image (None when none serves its
        platforms: the built-in probe then tests with another usable image, else a test image,
        see ``builtin/test_image.py``).
    :param candidate: the binary to probe.
    :return: the probe's result. Stops at first non-None result (``firstresult``).
    """


# ---------------------------------------------------------------------------------------------
# Phase 4: GPUs and libraries (always run)
# ---------------------------------------------------------------------------------------------


@hookspec
def glidein_gpu_detect(context: Context, facts: Facts) -> Iterable[GpuDevice] | None:
    """Report the GPUs this glidein may use (MIG instances count as devices).

    Always called, in every mode. The built-in ``gpus`` implements it.

    :return: devices. All plugins are asked; devices are de-duplicated by UUID when known.
    """


@hookspec
def glidein_libraries_detect(context: Context, facts: Facts) -> Iterable[Library] | None:
    """Report libraries and toolkits on the node (CUDA, ROCm, OpenCL ICDs, ...).

    Always called, in every mode. The built-in ``gpus`` implements it.

    :param facts: holds the GPUs found.
    :return: libraries. All plugins are asked.
    """


# ---------------------------------------------------------------------------------------------
# Phase 5: bind mounts (only with a working runtime)
# ---------------------------------------------------------------------------------------------


@hookspec
def glidein_binds_contribute(context: Context, facts: Facts) -> Iterable[Bind] | None:
    """Contribute bind mounts for the jobs' containers.

    Called only with a working runtime. The built-in ``binds`` offers the Frontend's, the
    Factory's and the default binds.

    :return: binds. All plugins are asked; binds are de-duplicated by destination, the first
        in call order winning (the loser is reported in the trace).
    """


@hookspec
def glidein_binds_validate(
    context: Context, facts: Facts, binds: Sequence[Bind]
) -> Iterable[BindVerdict] | None:
    """Judge the bind mounts, all at once (so that one bounded check can cover them all).

    :param facts: holds the runtime (its features) and the node's default image.
    :param binds: the binds contributed, de-duplicated by destination.
    :return: verdicts for the binds this plugin has an opinion on. All plugins are asked; one
        ``ok=False`` verdict drops a bind, and its reason is recorded in
        ``facts.rejected_binds``.
    """


# ---------------------------------------------------------------------------------------------
# Phase 6: advertise
# ---------------------------------------------------------------------------------------------


@hookspec
def glidein_attributes_contribute(context: Context, facts: Facts) -> Iterable[Attribute] | None:
    """Contribute machine ClassAd attributes to publish (glidein_config + condor_vars.lst).

    Always called, with what is left of the whole budget. The built-in ``singularity``
    publishes the container attributes, ``gpus`` and ``cvmfs`` their own.

    :param facts: everything the earlier phases decided.
    :return: attributes. All plugins are asked. Two plugins giving one attribute different
        values (names are case-insensitive) is a Config failure naming both, unless exactly one
        of them sets ``override=True``.
    """


# ---------------------------------------------------------------------------------------------
# Job start (not part of setup)
# ---------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def glidein_job_launch(
    context: Context, facts: Facts, job: JobRequest
) -> ContainerInvocation | None:
    """Build the command line that starts ``job`` in its container.

    Called at job start by the job wrapper, not during setup; the built-in ``launch``
    (``trylast``) applies ``glidein_plugins.jobstart.launch.build``. The wrapper builds a plugin
    manager
    only when setup found another implementation: otherwise it calls ``launch.build`` directly
    and never imports pluggy.

    :param facts: what setup decided (runtime, images, binds, GPUs).
    :param job: the job's argv and its job and machine ads.
    :return: the invocation. Stops at first non-None result (``firstresult``). A plugin that
        raises here fails the job start.
    """


# -- each hook's failure policy, beside its spec (the runner applies it; ``hookref`` prints it)


@dataclass(frozen=True)
class HookPolicy:
    """What a hook returns (``many``: an iterable of ``item``) and whether a crash is fatal."""

    item: type
    many: bool
    fatal: bool
    phase: str


POLICIES: dict[str, HookPolicy] = {
    "glidein_mode_negotiate": HookPolicy(ModeDecision, False, True, "mode"),
    "glidein_images_contribute": HookPolicy(Image, True, False, "images"),
    "glidein_image_select": HookPolicy(Image, False, False, "images"),
    "glidein_runtime_discover": HookPolicy(RuntimeCandidate, True, False, "runtime"),
    "glidein_runtime_probe": HookPolicy(RuntimeProbe, False, False, "runtime"),
    "glidein_gpu_detect": HookPolicy(GpuDevice, True, False, "gpu"),
    "glidein_libraries_detect": HookPolicy(Library, True, False, "libraries"),
    "glidein_binds_contribute": HookPolicy(Bind, True, False, "binds"),
    "glidein_binds_validate": HookPolicy(BindVerdict, True, False, "binds"),
    "glidein_attributes_contribute": HookPolicy(Attribute, True, False, "advertise"),
    "glidein_job_launch": HookPolicy(ContainerInvocation, False, True, "job"),
}

