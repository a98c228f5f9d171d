"""Built-in plugin ``singularity``: publish the negotiated mode and the proven runtime under the
names GlideinWMS Frontends already match on (``HAS_SINGULARITY``, ``GWMS_SINGULARITY_STATUS``,
``SINGULARITY_*``, ``GWMS_SINGULARITY_*``, ``GWMS_CONTAINERSW_*``)."""

from __future__ import annotations

from glidein_plugins import hookimpl
from glidein_plugins.results import Attribute, Facts, Mode, flag


@hookimpl
def glidein_attributes_contribute(facts: Facts) -> list[Attribute]:
    mode = facts.mode
    if mode is None or mode.outcome in (Mode.DISABLE, Mode.FAIL):
        return []  # DISABLE: GlideinWMS Singularity support is off, publish nothing
    status = Attribute.string("GWMS_SINGULARITY_STATUS", mode.outcome.value)
    runtime = facts.runtime
    if runtime is None:
        return [*flag("HAS_SINGULARITY", False, facts.runtime_reason), status]
    attributes = [*flag("HAS_SINGULARITY", True), status]
    described = {
        "PATH": runtime.candidate.path,
        "VERSION": runtime.version,
        "FULL_VERSION": runtime.full_version,
        "MODE": runtime.privilege,
    }
    for suffix, value in described.items():
        if value:
            for prefix in ("SINGULARITY_", "GWMS_SINGULARITY_", "GWMS_CONTAINERSW_"):
                attributes.append(Attribute.string(prefix + suffix, value))
    return attributes
