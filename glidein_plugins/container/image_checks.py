"""Images checked on this node, the way the built-in ``images`` plugin checks its own and a VO
plugin checks those it offers: the images as configured (``SINGULARITY_IMAGES_DICT`` and the
legacy ``SINGULARITY_IMAGE_DEFAULT*``), their real paths in CVMFS (one bounded child process),
whether a ClassAd string can carry them, and what is missing when none serves the node. The
restrictions are ``images.restrictions`` and ``images.refusal``. The ``images`` settings are
declared here (``SETTINGS``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from glidein_plugins.config.options import Option, Options
from glidein_plugins.container.images import (
    ANY_ORDER,
    LEGACY_KEYS,
    OSG_DEFAULTS,
    RESTRICTIONS_KEY,
    format_dict,
    parse_dict,
)
from glidein_plugins.errors import FailureType, GlideinFailure, InputError
from glidein_plugins.node import cvmfs_realpath
from glidein_plugins.protocol.htcondor import classad
from glidein_plugins.spec import checks
from glidein_plugins.spec.context import Context
from glidein_plugins.spec.results import Facts, Image

PLUGIN = "images"
SETTINGS = Options(
    Option("osg_defaults", True, checks.boolean,
           "offer OSG's rhel9/8/7 images when no image is configured"),
    Option("timeout", 20.0, checks.seconds,
           "seconds for each check of the images (existence, real path)"),
    Option("require_platform_image", False, checks.boolean,
           "no usable image for the node's platforms (or an empty GLIDEIN_REQUIRED_OS and "
           "REQUIRED_OS intersection) is fatal, instead of a warning with the runtime proven "
           "by a test image"),
)
DICT_KEY = "SINGULARITY_IMAGES_DICT"
REQUIRED_KEY = "SINGULARITY_IMAGE_REQUIRED"


@dataclass(frozen=True)
class Configured:
    """One configured image: its platform key, URI as written, and where it came from."""

    platform: str
    uri: str
    source: str


def configured(context: Context, osg_defaults: bool) -> list[Configured]:
    """The images as configured, before any check, one per platform key."""
    where = context.where(DICT_KEY) or "environment"
    try:
        parsed = parse_dict(context.value(DICT_KEY), f"{where}: {DICT_KEY}")
    except InputError as exc:
        raise GlideinFailure(FailureType.VO_CONFIG, str(exc)) from None
    found = {platform: Configured(platform, uri, DICT_KEY) for platform, uri in parsed}
    for key, platform in LEGACY_KEYS:  # GlideinWMS's dict_set_val: the legacy value wins
        uri = context.value(key)
        if uri:
            found[platform] = Configured(platform, uri, key)
    if not found and osg_defaults:
        return [Configured(platform, uri, "OSG default") for platform, uri in OSG_DEFAULTS]
    return list(found.values())


@dataclass(frozen=True)
class Resolved:
    """What the resolver said: ``real`` maps each path it answered for to its real path ('' if
    it does not exist); ``reason`` says why it did not answer for the others, and ``stale``
    holds those it was still working on (or had not reached) when it timed out."""

    real: dict[str, str]
    reason: str = ""
    stale: frozenset[str] = frozenset()


def resolve(context: Context, wanted: Iterable[str], root: str, timeout: float) -> Resolved:
    """The real paths of ``wanted`` (in CVMFS under ``root``), from one bounded child process."""
    wanted = list(dict.fromkeys(wanted))
    if not wanted:
        return Resolved({})
    result = context.quiet_run(cvmfs_realpath.argv(wanted, root), timeout=timeout)
    answered = cvmfs_realpath.answers(wanted, result.stdout)
    real = {path: found for path, (found, _) in answered.items()}
    if len(real) == len(wanted):
        return Resolved(real)
    if result.ok:
        return Resolved(real, f"unexpected output {result.stdout[:80]!r}")
    return Resolved(real, result.reason,
                    frozenset(wanted[len(real):]) if result.timed_out else frozenset())


def advertisable(image: Image) -> str:
    """Why ``image`` cannot be advertised in ``SINGULARITY_IMAGES_DICT`` ('' if it can)."""
    try:
        classad.check_value(format_dict([(image.platform, image.uri)]), "S")
    except ValueError as exc:
        return f"cannot be advertised: {exc}"
    return ""


def settings(context: Context) -> dict[str, Any]:
    """The plugin's settings, checked: a wrong one is a Config failure naming where."""
    return checks.plugin_settings(context, PLUGIN, SETTINGS)


def missing(context: Context, facts: Facts, platforms: Sequence[str]) -> tuple[str, str]:
    """What is missing when no usable image serves the node's ``platforms`` (('', '') when one
    does): a summary (the platforms, the OS lists that made them, the restrictions) and the
    details (each image's verdict, '' for an empty OS intersection)."""
    if facts.image is not None:
        return "", ""
    entry_os = context.get("GLIDEIN_REQUIRED_OS") or "any"
    job_os = context.get("REQUIRED_OS") or "any"
    if not platforms:
        return (f"GLIDEIN_REQUIRED_OS={entry_os} and REQUIRED_OS={job_os} have no platform in "
                "common, so no image serves this node"), ""
    verdicts: dict[str, str] = context.state(PLUGIN).get("verdicts", {})
    told = [f"{platform}: {verdicts[platform]}" for platform in platforms if platform in verdicts]
    unset = [platform for platform in platforms if platform not in verdicts]
    if unset:
        told.append(f"none configured for {','.join(unset)}")
    allowed = context.value(RESTRICTIONS_KEY) or "cvmfs (the default)"
    usable = ",".join(image.platform for image in facts.images) or "none"
    return (f"no usable image for platforms {','.join(platforms)} (GLIDEIN_REQUIRED_OS="
            f"{entry_os} meeting REQUIRED_OS={job_os}) after {RESTRICTIONS_KEY}={allowed} "
            f"(usable: {usable})"), "; ".join(told)


def required_by(context: Context, facts: Facts) -> str:
    """The opt-in that makes a missing image fatal here ('' when none applies)."""
    if facts.image is not None:
        return ""
    if settings(context)["require_platform_image"]:
        return (f"{checks.where(context, PLUGIN, 'require_platform_image')} is true (an image "
                "for the node's own platforms is required)")
    raw = context.value(REQUIRED_KEY)
    if raw.lower() in ("", "false") or any(image.platform in ANY_ORDER for image in facts.images):
        return ""
    where = context.where(REQUIRED_KEY) or "environment"
    return (f"{REQUIRED_KEY}={raw} ({where}) requires an image for "
            f"{','.join(ANY_ORDER)} or the node's platforms")
