"""Built-in plugin ``images``: the images dict this node can really use, and image selection.

Sources: ``SINGULARITY_IMAGES_DICT`` (a repeated key takes its last URI, as in GlideinWMS),
overridden per platform by the legacy ``SINGULARITY_IMAGE_DEFAULT6``/``7``/``''`` (``rhel6``,
``rhel7``, ``default``); when neither is set and the ``osg_defaults`` setting is on (default),
OSG's ``rhel9/8/7`` images. Each is read from glidein_config, else the environment.

``SINGULARITY_IMAGE_RESTRICTIONS`` (comma-separated, default ``cvmfs``): ``cvmfs`` = a local
image must lie in CVMFS; ``remote`` = registry URIs (``docker://``, ``oras://`` ...) are
allowed; ``test`` = when no configured image is usable, the probe's ``test_image`` setting
becomes platform ``default``; ``any`` is accepted and changes nothing (every usable image is
offered anyway). ``/cvmfs`` paths are rebased on ``CVMFS_MOUNT_DIR``. A local image must exist
(bounded ``stat`` processes, one per mount); an image in CVMFS is replaced by its real path (one
bounded child process for all of them, answering path by path, following symlinks into
``/cvmfs`` under ``CVMFS_MOUNT_DIR`` as GlideinWMS's ``cvmfs_resolve_path`` does), so that jobs
keep one revision of a tag like ``osgvo-el9:latest``; the trace and the image's ``source`` keep
the configured path. An image whose URI cannot be advertised in a ClassAd string is dropped,
with the reason.

No usable image for the node's platforms (none configured, none usable, none allowed, or
``GLIDEIN_REQUIRED_OS`` and ``REQUIRED_OS`` without a platform in common) is, by default, only a
warning, as in GlideinWMS: the runtime is still proven (``test_image``) and advertised, for jobs
that bring their own image. Two opt-ins make it fatal (``HAS_SINGULARITY=False``; REQUIRED:
the glidein fails): GlideinWMS's ``SINGULARITY_IMAGE_REQUIRED`` (any value but empty or
``false``: some usable image must exist, for the node's platforms or for one of ``default,
rhel9, rhel8, rhel7, rhel6``), and the ``require_platform_image`` setting (an image for the
node's own platforms must exist).

Settings (``settings: {images: {...}}``): ``osg_defaults`` (bool, true), ``timeout`` (seconds
for each check, 20), ``require_platform_image`` (bool, false).
"""

from __future__ import annotations

from collections.abc import Sequence

from glidein_plugins import hookimpl
from glidein_plugins.container import image_checks
from glidein_plugins.container.image_checks import (
    PLUGIN,
    Configured,
    advertisable,
    configured,
    resolve,
    settings,
)
from glidein_plugins.container.images import (
    RESTRICTIONS_KEY,
    is_remote,
    rebase_cvmfs,
    refusal,
    restrictions,
    under,
)
from glidein_plugins.node import paths
from glidein_plugins.spec.context import Context
from glidein_plugins.spec.results import Facts, Image

SETTINGS = image_checks.SETTINGS  # the declaration the engine checks the settings with


@hookimpl(trylast=True)
def glidein_images_contribute(context: Context) -> list[Image]:
    chosen = settings(context)
    timeout = float(chosen["timeout"])
    allowed = restrictions(context)
    root = context.cvmfs_root
    candidates: list[tuple[Configured, str]] = []  # (configured, rebased URI)
    verdicts: dict[str, str] = context.state(PLUGIN).setdefault("verdicts", {})
    for item in configured(context, chosen["osg_defaults"]):
        uri = rebase_cvmfs(item.uri, root)
        why = refusal(uri, allowed, root) if item.uri else "empty image URI"
        if why:
            verdicts[item.platform] = f"{item.uri or '-'} ({item.source}) refused: {why}"
            context.note(f"{item.platform}: {item.uri or '-'} ({item.source}) refused: {why}",
                         "warning")
        else:
            candidates.append((item, uri))
    resolved = resolve(context, [uri for _, uri in candidates if under(uri, root)], root,
                       timeout)
    if resolved.reason:
        context.note(f"CVMFS images not resolved to their real paths: {resolved.reason}",
                     "warning")
    images = []
    for item, uri in candidates:
        image = _image(item, resolved.real.get(uri) or uri)
        why = refusal(image.uri, allowed, root)  # where a CVMFS link really leads counts too
        if why:
            verdicts[item.platform] = f"{uri} -> {image.uri} ({item.source}) refused: {why}"
            context.note(f"{item.platform}: {uri} -> {image.uri} ({item.source}) refused: {why}",
                         "warning")
        else:
            images.append((item, image))
    test, test_why = _test_image(context, root) if "test" in allowed else (None, "")
    local = [image.uri for image in [*(image for _, image in images), *filter(None, [test])]
             if not is_remote(image.uri) and image.uri not in resolved.stale]
    found = paths.inspect(local, timeout, context.quiet_run, split_under=[root])

    def unusable(image: Image) -> str:
        if is_remote(image.uri):
            return advertisable(image)
        if image.uri not in found:  # not looked at: the resolver hung on it
            return f"could not be checked: {resolved.reason} ({paths.STALE_HINT})"
        return found[image.uri].reason or advertisable(image)

    usable = []
    for item, image in images:
        why = unusable(image)
        shown = item.uri if image.uri == item.uri else f"{item.uri} -> {image.uri}"
        if why:
            verdicts[item.platform] = f"{shown} ({item.source}) unusable: {why}"
            context.note(f"{item.platform}: {shown} ({item.source}) unusable: {why}", "warning")
        else:
            context.note(f"{item.platform}: {shown} ({item.source}) usable")
            usable.append(image)
    if usable or "test" not in allowed:
        return usable
    if test is None:
        context.note(f"no usable image, and {test_why}", "warning")
        return []
    why = unusable(test)
    if why:
        context.note(f"no usable image, and the test image {test.uri} is unusable: {why}",
                     "warning")
        return []
    context.note(f"no usable image: the probe's test image {test.uri} serves as 'default' "
                 f"({RESTRICTIONS_KEY} includes 'test')", "warning")
    return [test]


def _image(item: Configured, uri: str) -> Image:
    """The ``Image`` for ``item`` at ``uri``; its source keeps the configured URI if it differs."""
    source = item.source if uri == item.uri else f"{item.source}, configured as {item.uri}"
    return Image(item.platform, uri, source)


def _test_image(context: Context, root: str) -> tuple[Image | None, str]:
    """The probe's ``test_image`` setting as platform ``default`` (restriction ``test``), or
    None and why not."""
    uri = rebase_cvmfs(str(context.settings("probe").get("test_image") or "").strip(), root)
    if not uri:
        return None, (f"{RESTRICTIONS_KEY} includes 'test' but the probe has no test_image "
                      "setting to fall back on")
    if not (is_remote(uri) or uri.startswith("/")):
        return None, f"the test image {uri!r} is neither an absolute path nor a registry URI"
    return Image("default", uri, "test image (settings.probe.test_image)"), ""


@hookimpl(trylast=True)
def glidein_image_select(facts: Facts, platforms: Sequence[str]) -> Image | None:
    """The usable image of the first platform, in the order given (the job's preference)."""
    by_platform = {image.platform: image for image in facts.images}
    return next((by_platform[p] for p in platforms if p in by_platform), None)
