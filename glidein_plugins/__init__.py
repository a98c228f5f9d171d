"""glidein_plugins: find, prove and advertise what a GlideinWMS worker node can run.

The public API for VO plugin authors: the ``hookimpl`` marker, the typed results, the context,
and ``GlideinFailure`` to veto a node. See ``glidein_plugins.hookspecs`` for the hooks.
"""

from __future__ import annotations

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

hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = [
    "AttrType",
    "Attribute",
    "Bind",
    "BindVerdict",
    "ContainerInvocation",
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
