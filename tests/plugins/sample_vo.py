"""A well-behaved VO plugin, as a site or a VO would write one: it vouches for its own software
(an attribute), offers an image and a bind, and reads its settings from the entry's config."""

from __future__ import annotations

from glidein_plugins import Attribute, Bind, Context, Facts, Image, hookimpl


@hookimpl
def glidein_images_contribute() -> list[Image]:
    return [Image("rhel9", "/cvmfs/sample-vo.example.org/images/el9")]


@hookimpl
def glidein_binds_contribute() -> list[Bind]:
    return [Bind("/sample-vo-data", "/data")]


@hookimpl
def glidein_attributes_contribute(context: Context, facts: Facts) -> list[Attribute]:
    site = context.settings().get("site", "unknown")
    return [Attribute.boolean("SAMPLE_VO_READY", True), Attribute.string("SAMPLE_VO_SITE", site)]
