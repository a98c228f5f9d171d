"""Built-in plugin ``images``: the images dict a node can really use, and image selection.

Sources, first wins per platform: the legacy ``SINGULARITY_IMAGE_DEFAULT{6,7,}`` variables,
then ``SINGULARITY_IMAGES_DICT``, then (when neither is set and the ``osg_defaults`` setting is
on) OSG's ``rhel9/8/7`` images. ``SINGULARITY_IMAGE_RESTRICTIONS`` (default ``cvmfs``): with
``cvmfs`` local images must lie under the CVMFS root, with ``remote`` registry URIs are allowed.
``/cvmfs`` paths are rebased on ``CVMFS_MOUNT_DIR``; local images must exist (one bounded
``stat``). Selection keeps the platform list's order of preference.
"""

from __future__ import annotations

from collections.abc import Sequence

from glidein_plugins import hookimpl, paths
from glidein_plugins.builtin.discovery import cvmfs_root, value
from glidein_plugins.context import Context
from glidein_plugins.errors import FailureType, GlideinFailure, InputError
from glidein_plugins.images import (
    LEGACY_KEYS,
    OSG_DEFAULTS,
    is_remote,
    parse_dict,
    rebase_cvmfs,
    under,
)
from glidein_plugins.results import Facts, Image

SETTINGS = {"osg_defaults": True, "timeout": 20.0}
DICT_KEY = "SINGULARITY_IMAGES_DICT"
RESTRICTIONS_KEY = "SINGULARITY_IMAGE_RESTRICTIONS"
RESTRICTIONS = ("cvmfs", "remote", "test")


def configured(context: Context, osg_defaults: bool) -> list[tuple[str, str, str]]:
    """``(platform, uri, source)`` as configured, before any check."""
    items: list[tuple[str, str, str]] = []
    for key, platform in LEGACY_KEYS:
        uri = value(context, key)
        if uri:
            items.append((platform, uri, key))
    try:
        parsed = parse_dict(value(context, DICT_KEY), context.where(DICT_KEY) or DICT_KEY)
    except InputError as exc:
        raise GlideinFailure(FailureType.VO_CONFIG, str(exc)) from None
    items += [(platform, uri, DICT_KEY) for platform, uri in parsed]
    if not items and osg_defaults:
        items = [(platform, uri, "OSG default") for platform, uri in OSG_DEFAULTS]
    first: dict[str, tuple[str, str, str]] = {}
    for item in items:
        first.setdefault(item[0], item)  # a legacy variable overrides the dict's entry
    return list(first.values())


def restrictions(context: Context) -> tuple[str, ...]:
    raw = value(context, RESTRICTIONS_KEY) or "cvmfs"
    names = tuple(name.strip().lower() for name in raw.split(",") if name.strip())
    unknown = [name for name in names if name not in RESTRICTIONS]
    if unknown:
        where = context.where(RESTRICTIONS_KEY) or RESTRICTIONS_KEY
        raise GlideinFailure(FailureType.CONFIG, f"{where}: {RESTRICTIONS_KEY}={raw!r}: unknown "
                             f"{', '.join(unknown)} (allowed: {', '.join(RESTRICTIONS)})")
    return names


@hookimpl(trylast=True)
def glidein_images_contribute(context: Context) -> list[Image]:
    settings = {**SETTINGS, **context.settings("images")}
    allowed = restrictions(context)
    root = cvmfs_root(context)
    candidates: list[Image] = []
    for platform, uri, source in configured(context, bool(settings["osg_defaults"])):
        if not uri:
            context.note(f"{platform}: empty image URI ({source}) skipped", "warning")
            continue
        if is_remote(uri):
            if "remote" in allowed:
                candidates.append(Image(platform, uri, source))
            else:
                context.note(f"{platform}: {uri} refused: remote images need "
                             f"{RESTRICTIONS_KEY} to include 'remote'", "warning")
            continue
        path = rebase_cvmfs(uri, root)
        if "cvmfs" in allowed and not under(path, root):
            context.note(f"{platform}: {path} refused: not under CVMFS ({root}) and "
                         f"{RESTRICTIONS_KEY} includes 'cvmfs'", "warning")
            continue
        candidates.append(Image(platform, path, source))
    local = [image.uri for image in candidates if not is_remote(image.uri)]
    found = paths.inspect(local, float(settings["timeout"]), context.run)
    usable = []
    for image in candidates:
        info = found.get(image.uri)
        if info is not None and not info.exists:
            context.note(f"{image.platform}: {image.uri} unusable: {info.reason}", "warning")
        else:
            usable.append(image)
    return usable


@hookimpl(trylast=True)
def glidein_image_select(facts: Facts, platforms: Sequence[str]) -> Image | None:
    by_platform = {image.platform: image for image in facts.images}
    return next((by_platform[p] for p in platforms if p in by_platform), None)
