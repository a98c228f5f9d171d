"""samplevo: the Sample VO's glidein plugin.

It offers the VO's el9 image (``image`` setting, default under the node's CVMFS) and
advertises ``SAMPLEVO_READY`` (the VO's CVMFS repository is mounted) and ``SAMPLEVO_SITE``
(the entry's ``site`` setting, else ``GLIDEIN_Site``).
"""

from __future__ import annotations

import os

from glidein_plugins import Attribute, Context, Facts, Image, Option, Options, hookimpl
from glidein_plugins.spec import checks

REPOSITORY = "sample-vo.example.org"
# the entry's settings.samplevo, declared once: check-config, pack and the setup check them
SETTINGS = Options(
    Option("image", "", checks.text, "the VO's el9 image ('': the one under the node's CVMFS)"),
    Option("site", "", checks.text, "the site name to advertise ('': GLIDEIN_Site)"),
)


def cvmfs_root(context: Context) -> str:
    return context.environ.get("CVMFS_MOUNT_DIR") or "/cvmfs"


@hookimpl
def glidein_images_contribute(context: Context, facts: Facts) -> list[Image]:
    default = os.path.join(cvmfs_root(context), REPOSITORY, "images", "el9")
    return [Image("rhel9", str(context.settings().get("image") or default))]


@hookimpl
def glidein_attributes_contribute(context: Context, facts: Facts) -> list[Attribute]:
    site = context.settings().get("site") or context.get("GLIDEIN_Site") or "unknown"
    ready = os.path.isdir(os.path.join(cvmfs_root(context), REPOSITORY))
    return [Attribute.boolean("SAMPLEVO_READY", ready),
            Attribute.string("SAMPLEVO_SITE", str(site))]
