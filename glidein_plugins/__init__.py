"""glidein_plugins: find, prove and advertise what a GlideinWMS worker node can run.

The public API for VO plugin authors: the ``hookimpl`` marker, the typed results, the
``Context`` every hook receives, ``GlideinFailure`` to veto a node, and the helpers a plugin
uses: ``checks`` (its settings), ``paths`` (bounded looks at paths), ``one_line``. See
``glidein_plugins.spec.hookspecs`` for the hooks.

Every name is imported on first use (PEP 562): the job wrapper imports
``glidein_plugins.jobstart.launch`` for every job, and must not pay for pluggy, YAML or the typed
results
it does not use. ``from glidein_plugins import hookimpl, Attribute`` works as usual.
"""

from __future__ import annotations

from glidein_plugins._version import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    import pluggy

    from glidein_plugins.config.options import Option, Options
    from glidein_plugins.errors import FailureType, GlideinFailure, InputError
    from glidein_plugins.node import paths
    from glidein_plugins.spec import checks
    from glidein_plugins.spec.context import Context
    from glidein_plugins.spec.results import (
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
        one_line,
    )

    hookimpl: pluggy.HookimplMarker

# name -> the module that defines it ("" for hookimpl, made here)
_LAZY = {
    "Context": "glidein_plugins.spec.context",
    "FailureType": "glidein_plugins.errors",
    "GlideinFailure": "glidein_plugins.errors",
    "InputError": "glidein_plugins.errors",
    "Option": "glidein_plugins.config.options",
    "Options": "glidein_plugins.config.options",
    **{name: "glidein_plugins.spec.results" for name in (
        "AttrType", "Attribute", "Bind", "BindVerdict", "ContainerInvocation", "Facts",
        "GpuDevice", "Image", "JobRequest", "Library", "Mode", "ModeDecision",
        "RuntimeCandidate", "RuntimeProbe", "flag", "one_line")},
    "hookimpl": "",
}
# the helper modules a plugin uses: its settings' checks, bounded looks at paths
_MODULES = {"checks": "glidein_plugins.spec.checks", "paths": "glidein_plugins.node.paths"}


def __getattr__(name: str) -> object:
    """Import a public name on first use, and keep it in the module's namespace."""
    if name not in _LAZY and name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib  # noqa: PLC0415 - lazy on purpose

    if name in _MODULES:
        value: object = importlib.import_module(_MODULES[name])
    elif name == "hookimpl":
        pluggy_module = importlib.import_module("pluggy")
        hookspecs = importlib.import_module("glidein_plugins.spec.hookspecs")
        value = pluggy_module.HookimplMarker(hookspecs.PROJECT)
    else:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_MODULES})


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
    "InputError",
    "JobRequest",
    "Library",
    "Mode",
    "ModeDecision",
    "Option",
    "Options",
    "RuntimeCandidate",
    "RuntimeProbe",
    "__version__",
    "checks",
    "flag",
    "hookimpl",
    "one_line",
    "paths",
]
