"""Built-in plugin ``singularity``: publish the negotiated mode, the proven runtime, its images
and features under the names GlideinWMS Frontends already match on, plus what our probes learnt.
Every False comes with a ``<NAME>_REASON`` string."""

from __future__ import annotations

from glidein_plugins import hookimpl
from glidein_plugins.context import Context
from glidein_plugins.images import format_dict
from glidein_plugins.results import Attribute, Facts, Mode, RuntimeProbe, flag

FEATURES = (  # probe feature -> attribute
    ("missing_target", "SINGULARITY_CAN_BIND_MISSING_TARGET"),
    ("sif", "SINGULARITY_CAN_USE_SIF"),
    ("pid_namespaces", "SINGULARITY_CAN_USE_PID_NAMESPACES"),
)


def _runtime_attributes(runtime: RuntimeProbe) -> list[Attribute]:
    described = {
        "PATH": runtime.candidate.path,
        "VERSION": runtime.version,
        "FULL_VERSION": runtime.full_version,
        "MODE": runtime.privilege,
    }
    attributes = [Attribute.string(prefix + suffix, text)
                  for suffix, text in described.items() if text
                  for prefix in ("SINGULARITY_", "GWMS_SINGULARITY_", "GWMS_CONTAINERSW_")]
    for feature, name in FEATURES:
        if feature in runtime.features:
            attributes += flag(name, runtime.features[feature], runtime.reasons.get(feature, ""))
    attributes.append(Attribute.boolean("GLIDEIN_NESTED_CONTAINER",
                                        runtime.features.get("nested", False)))
    userns = runtime.reasons.get("user_namespaces")
    if userns:
        attributes.append(Attribute.string("HAS_UNPRIVILEGED_USER_NAMESPACES", userns))
    return attributes


def _provides(context: Context, item: str) -> Attribute:
    """``GLIDEIN_PROVIDES`` with ``item`` appended to what the entry already provides."""
    current = [p.strip() for p in (context.get("GLIDEIN_PROVIDES") or "").split(",") if p.strip()]
    return Attribute.string("GLIDEIN_PROVIDES", ",".join(dict.fromkeys([*current, item])))


@hookimpl
def glidein_attributes_contribute(context: Context, facts: Facts) -> list[Attribute]:
    mode = facts.mode
    if mode is None or mode.outcome in (Mode.DISABLE, Mode.FAIL):
        return []  # DISABLE: GlideinWMS Singularity support is off, publish nothing
    status = Attribute.string("GWMS_SINGULARITY_STATUS", mode.outcome.value)
    runtime = facts.runtime
    if runtime is None or not facts.images:
        reason = facts.runtime_reason or "no usable image (see the images decisions)"
        return [*flag("HAS_SINGULARITY", False, reason), status]
    platforms = [image.platform for image in facts.images]
    return [
        *flag("HAS_SINGULARITY", True), status,
        *_runtime_attributes(runtime),
        Attribute.string("SINGULARITY_IMAGES_DICT",
                         format_dict((image.platform, image.uri) for image in facts.images)),
        Attribute.string("GLIDEIN_CONTAINER_PLATFORMS", ",".join(platforms)),
        _provides(context, f"singularity/{runtime.privilege}"),
    ]
