"""Built-in plugin ``probe``: prove a runtime candidate really runs containers, with
``glidein_plugins.container.probe`` (every step, feature and setting is in its docstring).

Settings (``settings: {probe: {...}}``): ``timeout`` (60 s, each container test),
``version_timeout`` (10 s), ``test_image``, ``remote_test_image`` (true), ``sif_image``,
``cache_ttl`` (3600 s; 0 disables the cache).
"""

from __future__ import annotations

from glidein_plugins import hookimpl
from glidein_plugins.container import probe
from glidein_plugins.spec import checks
from glidein_plugins.spec.context import Context
from glidein_plugins.spec.results import Facts, RuntimeCandidate, RuntimeProbe

SETTINGS = probe.SETTINGS  # the declaration the engine checks the settings with


@hookimpl(trylast=True)
def glidein_runtime_probe(context: Context, facts: Facts,
                          candidate: RuntimeCandidate) -> RuntimeProbe:
    return probe.probe(context, facts, candidate,
                       checks.plugin_settings(context, "probe", SETTINGS))
