"""VO plugin ``cms`` (enabled per entry): CMS's images and the site configuration CMS jobs read.

Technique shown: **adding images and binds** (a default mode comes from the entry's config).

* Images: ``/cvmfs/singularity.opensciencegrid.org/cmssw/cms:rhel7``, ``:rhel8``, ``:rhel9``
  as platforms ``rhel7``/``rhel8``/``rhel9``. CMS plugins are called before the built-in
  ``images``, so these win over the Frontend's ``SINGULARITY_IMAGES_DICT`` for those platforms
  (CMS payloads are built for them); each is checked as the built-in checks its own.
* Binds: CMSSW finds its site configuration (``site-local-config.xml``, storage description) at
  ``/cvmfs/cms.cern.ch/SITECONF/local``; where the site's SITECONF is not CVMFS's own (a
  site-maintained copy, or a CVMFS ``local`` link that does not point at this site), the
  plugin binds the site's directory there: the ``siteconf`` setting, else
  ``/cvmfs/cms.cern.ch/SITECONF/<CMS_LOCAL_SITE>`` when glidein_config (or the environment)
  names the site. The bind goes through the built-in ``binds`` validation like any other (a
  missing source is dropped with the reason). Without either, nothing is bound.
* Mode: CMS runs only in containers. Negotiation is left to the built-in ``mode`` plugin; a CMS
  entry sets ``GLIDEIN_SINGULARITY_REQUIRE: REQUIRED`` in its YAML ``attributes`` (see
  ``factory_configs/cms.yaml``). The job directory is bound onto ``/srv`` by the built-in
  ``launch`` plugin (``--home JOB_DIR:/srv``), as CMS's own wrapper does.

Settings (``settings: {cms: {...}}``): ``images`` (true: offer CMS's images), ``siteconf``
(the host directory holding the site's SITECONF, ``''``: derive it from ``CMS_LOCAL_SITE``),
``siteconf_target`` (``/cvmfs/cms.cern.ch/SITECONF/local``), ``timeout`` (seconds for each
check of the images, 20).
"""

from __future__ import annotations

import re
from typing import Any

from glidein_plugins import (
    Bind,
    Context,
    FailureType,
    GlideinFailure,
    Image,
    Option,
    Options,
    checks,
    hookimpl,
)
from glidein_plugins.container import binds as bind_lists
from glidein_plugins.container.images import rebase_cvmfs
from glidein_plugins.vo import _common

PLUGIN = "cms"
IMAGES = tuple((f"rhel{n}", f"/cvmfs/singularity.opensciencegrid.org/cmssw/cms:rhel{n}")
               for n in (9, 8, 7))
SITECONF = "/cvmfs/cms.cern.ch/SITECONF"
SITE_KEY = "CMS_LOCAL_SITE"
SITE_NAME = re.compile(r"^T[0-3]_[A-Za-z0-9]+_[A-Za-z0-9_-]+$")
SETTINGS = Options(
    Option("images", True, checks.boolean, "offer CMS's images"),
    Option("siteconf", "", checks.path_or_empty, "the host directory holding the site's "
           "SITECONF ('': from CMS_LOCAL_SITE)"),
    Option("siteconf_target", f"{SITECONF}/local", checks.absolute_path,
           "where jobs find it"),
    Option("timeout", 20.0, checks.seconds, "seconds for each check of the images"),
)


def settings(context: Context) -> dict[str, Any]:
    return checks.plugin_settings(context, PLUGIN, SETTINGS)


@hookimpl
def glidein_images_contribute(context: Context) -> list[Image]:
    options = settings(context)
    if not options["images"]:
        return []
    return _common.usable_images(context, IMAGES, "CMS image", float(options["timeout"]))


def siteconf_source(context: Context, options: dict[str, Any]) -> str:
    """The host directory to bind as SITECONF/local ('' for none)."""
    if options["siteconf"]:
        return str(options["siteconf"])
    site = context.value(SITE_KEY)
    if not site:
        return ""
    if not SITE_NAME.match(site):
        raise GlideinFailure(FailureType.VO_CONFIG, (
            f"{context.where(SITE_KEY) or 'environment'}: {SITE_KEY}={site!r} is not a CMS "
            "site name (T<tier>_<country>_<site>)"))
    return rebase_cvmfs(f"{SITECONF}/{site}", context.cvmfs_root)


@hookimpl
def glidein_binds_contribute(context: Context) -> list[Bind]:
    options = settings(context)
    source = siteconf_source(context, options)
    if not source:
        context.note(f"no SITECONF bind: neither settings.{PLUGIN}.siteconf nor {SITE_KEY} "
                     "is set (jobs use CVMFS's SITECONF/local)")
        return []
    return [bind_lists.make(source, str(options["siteconf_target"]), "ro", "CMS SITECONF")]
