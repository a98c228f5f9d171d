"""Built-in plugin ``binds``: the bind mounts every job container gets, validated on this node.

Merged in GlideinWMS's order, first destination wins: Frontend ``GLIDEIN_SINGULARITY_BINDPATH``,
Factory ``GLIDEIN_SINGULARITY_BINDPATH_DEFAULT``, the usual site paths, CVMFS (``/cvmfs``, from
``CVMFS_MOUNT_DIR`` when CVMFS is mounted elsewhere), and ``/etc/OpenCL/vendors`` with GPUs.
A bind is dropped (with the reason) when its source is missing, when its destination would mask
the container (``/``, ``/proc``, ``/sys``, ``/dev``, ``/srv``), or when the runtime cannot
create a missing bind target and the destination does not exist in the (directory) image.
"""

from __future__ import annotations

from collections.abc import Sequence

from glidein_plugins import binds as bind_lists
from glidein_plugins import hookimpl, paths
from glidein_plugins.builtin.discovery import cvmfs_root, value
from glidein_plugins.context import Context
from glidein_plugins.errors import FailureType, GlideinFailure, InputError
from glidein_plugins.images import is_remote, rebase_cvmfs
from glidein_plugins.results import Bind, BindVerdict, Facts

SETTINGS = {"timeout": 20.0}
SOURCES = (  # variable, who sets it, failure type of a malformed value
    ("GLIDEIN_SINGULARITY_BINDPATH", "Frontend", FailureType.VO_CONFIG),
    ("GLIDEIN_SINGULARITY_BINDPATH_DEFAULT", "Factory", FailureType.CONFIG),
)
OPENCL = "/etc/OpenCL/vendors"


@hookimpl(trylast=True)
def glidein_binds_contribute(context: Context, facts: Facts) -> list[Bind]:
    root = cvmfs_root(context)
    found: list[Bind] = []
    for key, who, failure_type in SOURCES:
        try:
            parsed = bind_lists.parse(value(context, key), context.where(key) or key, key)
        except InputError as exc:
            raise GlideinFailure(failure_type, f"{who} {key}: {exc}") from None
        found += [Bind(rebase_cvmfs(b.source, root), b.target or b.source, b.options, b.origin)
                  for b in parsed]
    found += [Bind(path, origin="default") for path in bind_lists.DEFAULTS]
    found.append(Bind(root, "/cvmfs", origin="CVMFS"))
    if facts.gpus:
        found.append(Bind(OPENCL, origin="GPU"))
    return found


@hookimpl(trylast=True)
def glidein_binds_validate(context: Context, facts: Facts,
                           binds: Sequence[Bind]) -> list[BindVerdict]:
    timeout = float({**SETTINGS, **context.settings("binds")}["timeout"])
    verdicts = [BindVerdict(bind, False, f"destination {bind.destination} would mask the "
                            "container's own directory")
                for bind in binds if bind_lists.masks_container(bind.destination)]
    rest = [bind for bind in binds if not bind_lists.masks_container(bind.destination)]
    image_dir = _image_directory(facts)
    inside = {bind: image_dir.rstrip("/") + bind.destination for bind in rest} if image_dir else {}
    found = paths.inspect([*(bind.source for bind in rest), *inside.values()], timeout,
                          context.run)
    for bind in rest:
        source = found[bind.source]
        if not source.exists:
            verdicts.append(BindVerdict(bind, False, f"source {bind.source} {source.reason}"))
        elif bind in inside and not found[inside[bind]].exists:
            verdicts.append(BindVerdict(bind, False, (
                f"destination {bind.destination} does not exist in image {image_dir} and the "
                "runtime cannot create bind targets (no underlay/overlay)")))
    return verdicts


def _image_directory(facts: Facts) -> str:
    """The default image's path when binds onto missing targets must be checked in it: the
    runtime cannot create them and the image is a local directory ('' otherwise)."""
    runtime, image = facts.runtime, facts.image
    if runtime is None or image is None or runtime.features.get("missing_target", True):
        return ""
    if is_remote(image.uri) or image.uri.endswith((".sif", ".img", ".simg")):
        return ""
    return image.uri
