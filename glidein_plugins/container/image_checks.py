"""Images checked on this node, the way the built-in ``images`` plugin checks its own and a VO
plugin checks those it offers: the images as configured (``SINGULARITY_IMAGES_DICT`` and the
legacy ``SINGULARITY_IMAGE_DEFAULT*``), their real paths in CVMFS (one bounded child process),
and whether a ClassAd string can carry them. The restrictions are ``images.restrictions`` and
``images.refusal``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from glidein_plugins.container.images import LEGACY_KEYS, OSG_DEFAULTS, format_dict, parse_dict
from glidein_plugins.errors import FailureType, GlideinFailure, InputError
from glidein_plugins.node import cvmfs_realpath
from glidein_plugins.protocol.htcondor import classad
from glidein_plugins.spec.context import Context
from glidein_plugins.spec.results import Image

DICT_KEY = "SINGULARITY_IMAGES_DICT"


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
