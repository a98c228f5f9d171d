"""glidein_plugins: find, prove and advertise what a GlideinWMS worker node can run.

The public API for VO plugin authors: the ``hookimpl`` marker, the typed results, the
``Context`` every hook receives, and ``GlideinFailure`` to veto a node. See
``glidein_plugins.hookspecs`` for the hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

from glidein_plugins._version import __version__
from glidein_plugins.errors import FailureType, GlideinFailure
from glidein_plugins.hookspecs import PROJECT
from glidein_plugins.results import (
    Attribute,
    AttrType,
    Bind,
    BindVerdict,
    ContainerInvocation,
    Facts,
    GpuDevice,
    Image,
    JobRequest,
    Library,
    Mode,
    ModeDecision,
    RuntimeCandidate,
    RuntimeProbe,
    flag,
)

if TYPE_CHECKING:
    from glidein_plugins.context import Context

hookimpl = pluggy.HookimplMarker(PROJECT)


def __getattr__(name: str) -> Any:
    """``Context`` is imported on first use: it brings in YAML and the command runner."""
    if name == "Context":
        from glidein_plugins.context import Context  # noqa: PLC0415 - lazy on purpose

        return Context
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AttrType",
    "Attribute",
    "Bind",
    "BindVerdict",
    "ContainerInvocation",
    "Context",
    "Facts",
    "FailureType",
    "GlideinFailure",
    "GpuDevice",
    "Image",
    "JobRequest",
    "Library",
    "Mode",
    "ModeDecision",
    "RuntimeCandidate",
    "RuntimeProbe",
    "__version__",
    "flag",
    "hookimpl",
]
