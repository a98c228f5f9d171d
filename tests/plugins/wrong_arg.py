"""Broken on purpose: a valid hook, then one with an argument name the spec does not have.

pluggy registers hooks in name order and stops at the bad one: the valid hook registered before
it must not stay behind when the plugin is skipped.
"""

from __future__ import annotations

from glidein_plugins import Attribute, GpuDevice, hookimpl


@hookimpl
def glidein_attributes_contribute() -> list[Attribute]:
    return [Attribute.boolean("WRONG_ARG_LOADED", True)]


@hookimpl
def glidein_gpu_detect(fact: object) -> list[GpuDevice]:
    return []
