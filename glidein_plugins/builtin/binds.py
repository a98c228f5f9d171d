"""Built-in plugin ``binds``: the bind mounts every job container gets, validated on this node.

Offered in GlideinWMS's order (the runner keeps the first bind for each destination and reports
the others): the Frontend's ``GLIDEIN_SINGULARITY_BINDPATH``, the Factory's
``GLIDEIN_SINGULARITY_BINDPATH_DEFAULT`` (each read from glidein_config, else the environment;
``/cvmfs/...`` sources rebased on ``CVMFS_MOUNT_DIR``), the usual site paths (``/hadoop``,
``/ceph``, ``/hdfs``, ``/lizard``, ``/mnt/hadoop``, ``/mnt/hdfs``, ``/etc/hosts``,
``/etc/localtime``), CVMFS (``CVMFS_MOUNT_DIR:/cvmfs`` when CVMFS is mounted elsewhere), and
``/etc/OpenCL/vendors`` when GPUs were found. A malformed Frontend list is a ``VO_Config``
failure, a malformed Factory list a ``Config`` failure, each naming the line and the item.

A bind is refused, with the reason, when its paths cannot be written in a bind list, when its
destination would mask the container (``/``, ``/proc``, ``/sys``, ``/dev``, ``/srv``), when its
source is missing, or when the runtime cannot bind onto a missing target (its probe's
``missing_target`` feature is False), the node's image is a local directory, and the destination
does not exist in it. Every path is looked at by bounded ``stat`` processes, one per mount
(each CVMFS repository counting as one), so a dead mount only leaves its own binds unchecked.

Settings (``settings: {binds: {...}}``): ``timeout`` (seconds for the ``stat``, 20).
"""

from __future__ import annotations

from collections.abc import Sequence

from glidein_plugins import hookimpl
from glidein_plugins.config.options import Option, Options
from glidein_plugins.container import binds as bind_lists
from glidein_plugins.container.images import is_remote, rebase_cvmfs
from glidein_plugins.errors import FailureType, GlideinFailure, InputError
from glidein_plugins.node import paths
from glidein_plugins.spec import checks
from glidein_plugins.spec.context import Context
from glidein_plugins.spec.results import Bind, BindVerdict, Facts

PLUGIN = "binds"
TIMEOUT = 20.0
SETTINGS = Options(Option("timeout", TIMEOUT, checks.seconds,
                          "seconds for the check of the bind sources and destinations"))
SOURCES = (  # variable, who sets it, failure type of a malformed value
    ("GLIDEIN_SINGULARITY_BINDPATH", "Frontend", FailureType.VO_CONFIG),
    ("GLIDEIN_SINGULARITY_BINDPATH_DEFAULT", "Factory", FailureType.CONFIG),
)
OPENCL = "/etc/OpenCL/vendors"


def configured(context: Context, root: str) -> list[Bind]:
    """The Frontend's then the Factory's binds, ``/cvmfs`` sources rebased on ``root``."""
    found: list[Bind] = []
    for key, who, failure_type in SOURCES:
        where = f"{context.where(key) or 'environment'}: {key} ({who})"
        try:
            parsed = bind_lists.parse(context.value(key), where, key)
        except InputError as exc:
            raise GlideinFailure(failure_type, str(exc)) from None
        found += [bind_lists.make(rebase_cvmfs(b.source, root), b.destination, b.options,
                                  b.origin) for b in parsed]
    return found


@hookimpl(trylast=True)
def glidein_binds_contribute(context: Context, facts: Facts) -> list[Bind]:
    root = context.cvmfs_root
    found = configured(context, root)
    found += [Bind(path, origin="default") for path in bind_lists.DEFAULTS]
    found.append(bind_lists.make(root, "/cvmfs", origin="CVMFS"))
    if facts.gpus:
        found.append(Bind(OPENCL, origin="GPU"))
    return found


def timeout_setting(context: Context) -> float:
    """The ``timeout`` setting, checked: a wrong one is a Config failure naming where."""
    chosen = checks.plugin_settings(context, PLUGIN, SETTINGS)
    return float(chosen["timeout"])


def malformed(bind: Bind) -> str:
    """Why ``bind`` cannot be handed to the runtime ('' if it can)."""
    for label, path in (("source", bind.source), ("destination", bind.destination)):
        if not path.startswith("/") or ".." in path.split("/"):
            return f"{label} {path!r} is not an absolute path without '..'"
    try:
        bind_lists.format_bind(bind)
    except ValueError as exc:
        return str(exc)
    if bind_lists.masks_container(bind.destination):
        return f"destination {bind.destination} would mask the container's own directory"
    return ""


@hookimpl(trylast=True)
def glidein_binds_validate(context: Context, facts: Facts,
                           binds: Sequence[Bind]) -> list[BindVerdict]:
    timeout = timeout_setting(context)
    verdicts: list[BindVerdict] = []
    rest: list[Bind] = []
    for bind in binds:
        why = malformed(bind)
        if why:
            verdicts.append(BindVerdict(bind, False, why))
        else:
            rest.append(bind)
    image = _image_to_check(facts)
    inside = {bind: image + bind_lists.normalise(bind.destination) for bind in rest} if image \
        else {}
    found = paths.inspect([*(bind.source for bind in rest), *([image] if image else []),
                           *inside.values()], timeout, context.quiet_run,
                          split_under=[context.cvmfs_root])
    if image and found[image].kind != "directory":
        inside = {}  # a SIF or other image file: its content cannot be looked at from here
    for bind in rest:
        source = found[bind.source]
        if not source.exists:
            verdicts.append(BindVerdict(bind, False, f"source {bind.source} {source.reason}"))
        elif bind in inside and not found[inside[bind]].exists:
            verdicts.append(BindVerdict(bind, False, (
                f"destination {bind.destination} {found[inside[bind]].reason} in image "
                f"{image}, and the runtime cannot bind onto a missing target (no "
                "underlay/overlay)")))
    return verdicts


def _image_to_check(facts: Facts) -> str:
    """The node's image path if destinations must be looked for in it: the runtime cannot
    create bind targets and the image is local ('' otherwise; a directory is checked later)."""
    runtime, image = facts.runtime, facts.image
    if runtime is None or image is None or runtime.features.get("missing_target", True):
        return ""
    if is_remote(image.uri) or not image.uri.startswith("/"):
        return ""
    return image.uri.rstrip("/") or "/"
