"""Broken on purpose: it needs a module the node does not have (ImportError at load)."""

import glidein_plugins_no_such_dependency  # noqa: F401

from glidein_plugins import Attribute, hookimpl


@hookimpl
def glidein_attributes_contribute() -> list[Attribute]:
    return [Attribute.boolean("BROKEN_IMPORT_LOADED", True)]
