"""VO plugin ``atlas`` (enabled per entry): storage-cache binds onto site-chosen directories, and
a clear verdict on whether ATLAS container jobs can run here.

Technique shown: **adding and validating binds, and vetoing**.

* Binds: the ``cache_binds`` setting, GlideinWMS bind items (``"/scratch/atlas:/atlas-cache"``,
  ``"/data/cache:/cache:ro"``); each must be a directory on the node (a file is refused here, a
  missing one by the built-in ``binds``).
* Veto: such binds land on directories that do not exist in ATLAS's images, which needs a
  runtime that can bind onto missing targets (underlay/overlay). When the proven runtime cannot
  (the probe's ``missing_target`` feature is False) and the node's default image is a directory
  (an unpacked image, as in CVMFS), ``ATLAS_CONTAINER_OK = False`` with
  ``ATLAS_CONTAINER_OK_REASON`` saying why, so that the Frontend does not send ATLAS container
  jobs to fail here; the node stays usable for others. Also False when there is no usable
  container at all, or when a cache bind was dropped (the reason names it). True otherwise.
  The attribute is published whenever containers are wanted (PREFERRED, REQUIRED).

Settings (``settings: {atlas: {...}}``): ``cache_binds`` (list of bind items, []), ``timeout``
(seconds for the checks, 20).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from glidein_plugins import (
    Attribute,
    Bind,
    BindVerdict,
    Context,
    Facts,
    FailureType,
    GlideinFailure,
    InputError,
    Option,
    Options,
    checks,
    flag,
    hookimpl,
    paths,
)
from glidein_plugins.container import binds as bind_lists
from glidein_plugins.container.images import is_remote

PLUGIN = "atlas"
ORIGIN = "ATLAS cache"
FLAG = "ATLAS_CONTAINER_OK"
def _one_bind_each(items: list[str]) -> str:
    """Why an item of ``cache_binds`` is not one bind ``src[:dst[:opts]]`` ('' if none)."""
    for index, item in enumerate(items):
        try:
            if len(bind_lists.parse(item)) != 1:
                return f"[{index}]: expected one bind (src[:dst[:opts]]), got {item!r}"
        except InputError as exc:
            return f"[{index}]: {exc.message}"
    return ""


SETTINGS = Options(
    Option("cache_binds", [], checks.strings,
           "bind items src:dst[:ro|rw], e.g. [\"/scratch/atlas:/atlas-cache\"]",
           validate=_one_bind_each),
    Option("timeout", 20.0, checks.seconds,
           "seconds for the checks of the cache sources and the image"),
)


def settings(context: Context) -> dict[str, Any]:
    return checks.plugin_settings(context, PLUGIN, SETTINGS)


def cache_binds(context: Context) -> list[Bind]:
    """The ``cache_binds`` setting parsed; a malformed item is a Config failure naming it."""
    found: list[Bind] = []
    for index, item in enumerate(settings(context)["cache_binds"]):
        at = f"{checks.where(context, PLUGIN, 'cache_binds')}[{index}]"
        try:
            parsed = bind_lists.parse(item, at, ORIGIN)
        except InputError as exc:
            raise GlideinFailure(FailureType.CONFIG, str(exc)) from None
        if len(parsed) != 1:
            raise GlideinFailure(FailureType.CONFIG, f"{at}: expected one bind "
                                 f"(src[:dst[:opts]]), got {item!r}")
        found += parsed
    return found


@hookimpl
def glidein_binds_contribute(context: Context) -> list[Bind]:
    return cache_binds(context)


@hookimpl
def glidein_binds_validate(context: Context, binds: Sequence[Bind]) -> list[BindVerdict]:
    ours = [bind for bind in binds if bind.origin == ORIGIN]
    if not ours:
        return []
    found = paths.inspect([bind.source for bind in ours], float(settings(context)["timeout"]),
                          context.quiet_run, split_under=[context.cvmfs_root])
    return [BindVerdict(bind, False, f"cache source {bind.source} is a {found[bind.source].kind}"
                        ", not a directory") for bind in ours
            if found[bind.source].kind in ("file", "other")]


def _directory_image(context: Context, facts: Facts) -> str:
    """The default image's path when it is a local directory ('' otherwise)."""
    image = facts.image
    if image is None or is_remote(image.uri) or not image.uri.startswith("/"):
        return ""
    info = paths.inspect_one(image.uri, float(settings(context)["timeout"]), context.quiet_run)
    return image.uri if info.kind == "directory" else ""


def verdict(context: Context, facts: Facts) -> str:
    """Why ATLAS container jobs cannot run here ('' when they can)."""
    if facts.runtime is None or not facts.has_singularity:
        return f"no usable container: {facts.singularity_reason}"
    if not facts.runtime.features.get("missing_target", True):
        image = _directory_image(context, facts)
        if image:
            return (f"the default image {image} is a directory and "
                    f"{facts.runtime.candidate.path} cannot bind onto directories missing in it "
                    "(no underlay/overlay; see SINGULARITY_CAN_BIND_MISSING_TARGET_REASON): "
                    "ATLAS cache binds onto site-chosen directories would fail")
    dropped = [f"{v.bind.source}:{v.bind.destination} ({v.reason})"
               for v in facts.rejected_binds if v.bind.origin == ORIGIN]
    if dropped:
        return f"ATLAS cache binds dropped: {'; '.join(dropped)}"
    return ""


@hookimpl
def glidein_attributes_contribute(context: Context, facts: Facts) -> list[Attribute]:
    settings(context)
    if facts.mode is None or not facts.mode.wants_container:
        return []
    why = verdict(context, facts)
    if why:
        context.note(f"{FLAG} = False: {why}", "warning")
    return list(flag(FLAG, not why, why))
