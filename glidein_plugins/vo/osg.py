"""VO plugin ``osg`` (enabled per entry): the OSG-distributed Apptainer, OSG's images and OSG's
attribute names.

Technique shown: **adding runtime candidates, images and probe-derived attributes**.

* Runtime: proposes OSG's unprivileged Apptainer in CVMFS,
  ``/cvmfs/oasis.opensciencegrid.org/mis/apptainer/current/bin/apptainer`` (rebased on
  ``CVMFS_MOUNT_DIR``), at priority 250: after what the site named explicitly
  (``GLIDEIN_SINGULARITY_BINARY_OVERRIDE`` 100+, ``SINGULARITY_BIN`` 200+), before the
  ``apptainer``/``singularity`` on PATH (300+) and the old OSG ``singularity`` (700). It is
  proposed even when missing, so that its rejection is explained in the trace.
* Images: OSG's ``rhel9``/``rhel8``/``rhel7`` images
  (``/cvmfs/singularity.opensciencegrid.org/opensciencegrid/osgvo-elN:latest``) for each platform
  the configured ``SINGULARITY_IMAGES_DICT`` does not name (a Frontend's own dict is never
  overridden), checked as the built-in ``images`` plugin checks its own.
* Attributes: the legacy names OSG jobs' requirements still match on, ``OSG_SINGULARITY_PATH``
  and ``OSG_SINGULARITY_VERSION`` (the proven runtime), and ``OSG_CVMFS_APPTAINER`` (True when
  the proven runtime is OSG's Apptainer from CVMFS, the OSPool's supported one; its
  ``_REASON`` names the runtime used instead). The probe's findings are already published by
  the built-in ``singularity`` plugin under ``SINGULARITY_CAN_*``; this plugin does not repeat
  them.

Settings (``settings: {osg: {...}}``): ``apptainer`` (path, default the CVMFS one above; ``''``
proposes nothing), ``priority`` (250), ``images`` (true: offer OSG's images), ``timeout``
(seconds for each check of the images, 20).
"""

from __future__ import annotations

from typing import Any

from glidein_plugins import (
    Attribute,
    Context,
    Facts,
    Image,
    Option,
    Options,
    RuntimeCandidate,
    checks,
    flag,
    hookimpl,
    one_line,
)
from glidein_plugins.container.image_checks import configured
from glidein_plugins.container.images import OSG_DEFAULTS, rebase_cvmfs
from glidein_plugins.vo import _common

PLUGIN = "osg"
APPTAINER = "/cvmfs/oasis.opensciencegrid.org/mis/apptainer/current/bin/apptainer"
SOURCE = "OSG Apptainer in CVMFS"
SETTINGS = Options(
    Option("apptainer", None, checks.path_or_empty,
           f"the runtime to propose (default: {APPTAINER}); '' proposes none"),
    Option("priority", 250, checks.integer, "its discovery priority (override 100+, "
           "SINGULARITY_BIN 200+, PATH 300+)"),
    Option("images", True, checks.boolean, "offer OSG's images"),
    Option("timeout", 20.0, checks.seconds, "seconds for each check of the images"),
)


def settings(context: Context) -> dict[str, Any]:
    return checks.plugin_settings(context, PLUGIN, SETTINGS)


def apptainer(context: Context, options: dict[str, Any]) -> str:
    """The Apptainer to propose ('' for none): the setting, else OSG's, rebased."""
    configured = options["apptainer"]
    if configured is not None:
        return str(configured)
    return rebase_cvmfs(APPTAINER, context.cvmfs_root)


@hookimpl
def glidein_runtime_discover(context: Context) -> list[RuntimeCandidate]:
    options = settings(context)
    path = apptainer(context, options)
    return [RuntimeCandidate(path, SOURCE, int(options["priority"]))] if path else []


@hookimpl
def glidein_images_contribute(context: Context) -> list[Image]:
    options = settings(context)
    if not options["images"]:
        return []
    named = {item.platform for item in configured(context, osg_defaults=False)}
    wanted = [(platform, uri) for platform, uri in OSG_DEFAULTS if platform not in named]
    if named:
        context.note(f"OSG images not offered for {', '.join(sorted(named))}: the configured "
                     "images dict names them")
    return _common.usable_images(context, wanted, "OSG image", float(options["timeout"]))


@hookimpl
def glidein_attributes_contribute(context: Context, facts: Facts) -> list[Attribute]:
    settings(context)
    runtime = facts.runtime
    if runtime is None or not facts.has_singularity:
        return []
    expected = apptainer(context, settings(context))
    attributes = list(flag(
        "OSG_CVMFS_APPTAINER", bool(expected) and runtime.candidate.path == expected,
        f"the runtime in use is {runtime.candidate.path} ({runtime.candidate.source}), not "
        f"{expected or 'OSG Apptainer (not proposed: settings.osg.apptainer is empty)'}"))
    for name, text in (("OSG_SINGULARITY_PATH", runtime.candidate.path),
                       ("OSG_SINGULARITY_VERSION", one_line(runtime.version))):
        try:
            attributes.append(Attribute.string(name, text))
        except ValueError as exc:
            context.note(f"{name} not published: {exc}", "warning")
    return attributes
