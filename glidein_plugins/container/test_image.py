"""The image a runtime candidate is proven with (the probe's functional test), and its source.

Tried in order, the first usable one wins:

1. the probe's ``test_image`` setting: the entry's explicit choice, used as given;
2. the node's default image: the one a job that names no image would get;
3. any other usable image of the images dict, ``default, rhel9, rhel8, rhel7, rhel6`` first
   (GlideinWMS's setup tests with a dict image whatever ``REQUIRED_OS`` says);
4. GlideinWMS's test images, in its order: ``GWMS_SINGULARITY_IMAGE_DEFAULT`` (environment),
   ``APPTAINER_TEST_IMAGE`` (environment, then glidein_config), then the built-in
   ``oras://ghcr.io/apptainer/alpine:latest``. A local one must be an absolute path that exists
   (``/cvmfs`` rebased on ``CVMFS_MOUNT_DIR``; one bounded ``stat``); a remote one (a registry
   URI) is used when the probe's ``remote_test_image`` setting is on (the default, as in
   GlideinWMS: jobs never run in it) or ``SINGULARITY_IMAGE_RESTRICTIONS`` includes ``remote``.
   Pulling one needs the network: the container test's timeout bounds it, and its failure is
   reported as a test-image problem (``RuntimeProbe.test_image_failed``), not as "no runtime".

Steps 2-3 need no network and test what jobs will really run in; step 4 is what lets a node
with no usable image still advertise a working runtime (jobs that bring their own image).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from glidein_plugins.container.images import ANY_ORDER, is_remote, rebase_cvmfs, restrictions
from glidein_plugins.errors import GlideinFailure
from glidein_plugins.node import paths
from glidein_plugins.spec.context import Context
from glidein_plugins.spec.results import Facts

BUILTIN = "oras://ghcr.io/apptainer/alpine:latest"  # GlideinWMS's APPTAINER_TEST_IMAGE_DEFAULT
DEFAULT_KEY = "GWMS_SINGULARITY_IMAGE_DEFAULT"
TEST_KEY = "APPTAINER_TEST_IMAGE"
_STATE = "test_image"


@dataclass(frozen=True)
class TestImage:
    """The chosen image ('' when none) and where it came from, or why there is none."""

    uri: str
    source: str
    why_none: str = ""

    @property
    def remote(self) -> bool:
        return is_remote(self.uri)


def choose(context: Context, facts: Facts, settings: Mapping[str, Any]) -> TestImage:
    """The test image for this setup (chosen once, then remembered for every candidate)."""
    memo = context.state("probe")
    if _STATE not in memo:
        memo[_STATE] = _choose(context, facts, settings)
    chosen: TestImage = memo[_STATE]
    return chosen


def _choose(context: Context, facts: Facts, settings: Mapping[str, Any]) -> TestImage:
    explicit = str(settings.get("test_image") or "").strip()
    if explicit:
        return TestImage(explicit, "settings.probe.test_image")
    if facts.image is not None:
        return TestImage(facts.image.uri, f"the node's default image ({facts.image.platform})")
    order = {platform: rank for rank, platform in enumerate(ANY_ORDER)}
    others = sorted(facts.images, key=lambda image: order.get(image.platform, len(order)))
    if others:
        image = others[0]
        return TestImage(image.uri, f"images dict ({image.platform}), not one of the node's "
                                    "platforms")
    return _fallback(context, settings)


def _fallback(context: Context, settings: Mapping[str, Any]) -> TestImage:
    """GlideinWMS's test images (step 4), each checked; why none could be used otherwise."""
    root = context.cvmfs_root
    allow_remote = bool(settings.get("remote_test_image", True)) or _remote_allowed(context)
    from_config = context.get(TEST_KEY)
    offered = [
        (context.environ.get(DEFAULT_KEY, "").strip(), f"{DEFAULT_KEY} (environment)"),
        (context.environ.get(TEST_KEY, "").strip(), f"{TEST_KEY} (environment)"),
        ((from_config or "").strip(),
         f"{TEST_KEY} ({context.where(TEST_KEY) or 'glidein_config'})"),
        (BUILTIN, "GlideinWMS built-in test image"),
    ]
    refused: list[str] = []
    timeout = float(settings.get("version_timeout", 10.0))
    for uri, source in offered:
        if not uri:
            continue
        if is_remote(uri):
            if allow_remote:
                return TestImage(uri, source)
            refused.append(f"{source} {uri}: remote, and the probe's remote_test_image setting "
                           "is off and SINGULARITY_IMAGE_RESTRICTIONS has no 'remote'")
            continue
        if not uri.startswith("/"):
            refused.append(f"{source} {uri!r}: neither an absolute path nor a registry URI")
            continue
        local = rebase_cvmfs(uri, root)
        info = paths.inspect([local], timeout, context.quiet_run, split_under=[root])[local]
        if not info.exists:
            refused.append(f"{source} {local}: {info.reason or 'does not exist'}")
            continue
        return TestImage(local, source)
    return TestImage("", "", "no usable image to prove the runtime with; test images: "
                     + "; ".join(refused))


def _remote_allowed(context: Context) -> bool:
    try:
        return "remote" in restrictions(context)
    except GlideinFailure:  # a bad value fails the images phase itself, with file:line
        return False
