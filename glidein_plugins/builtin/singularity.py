"""Built-in plugin ``singularity``: publish the negotiated mode, the proven runtime, its images
and features under the names GlideinWMS Frontends already match on, plus what our probes learnt.

* NEVER: ``HAS_SINGULARITY=False`` (with its reason) and ``GWMS_SINGULARITY_STATUS``, as the
  reference does; nothing is looked for.
* PREFERRED/REQUIRED: the same, plus the host facts (unprivileged user namespaces, whether we
  already run inside a container) whether or not a runtime was found; with a proven runtime and
  a usable image, ``HAS_SINGULARITY=True`` and the runtime's path, version and privilege mode
  under the reference's names (``SINGULARITY_*``, ``GWMS_SINGULARITY_*``, ``CONTAINERSW_*``,
  ``GWMS_CONTAINERSW_*``), the images dict, the platforms jobs can ask for, what the probes
  learnt, and ``singularity/<mode>`` appended to ``GLIDEIN_PROVIDES``.
* DISABLE (and FAIL): nothing.

Every False comes with a ``<NAME>_REASON`` string. A value that cannot be published safely (a
path holding a quote, say) is left out and the decision trace says why; free text (versions,
reasons) is squeezed onto one publishable line instead. ``GLIDEIN_REQUIRED_OS`` is never
written (the reference overwrites the entry's value with ``any``), and neither are the names
the HTCondor startd computes itself (``HasSingularity``, ``SingularityVersion``, ...).
"""

from __future__ import annotations

from collections.abc import Iterable

from glidein_plugins import hookimpl
from glidein_plugins.builtin import probe
from glidein_plugins.context import Context
from glidein_plugins.images import ANY, format_dict, node_platforms, parse_platforms
from glidein_plugins.results import Attribute, Facts, Image, Mode, RuntimeProbe, flag, one_line

# probe feature -> attribute; each published only when the probe tested it
FEATURES = (
    ("missing_target", "SINGULARITY_CAN_BIND_MISSING_TARGET"),
    ("sif", "SINGULARITY_CAN_USE_SIF"),
    ("pid_namespaces", "SINGULARITY_CAN_USE_PID_NAMESPACES"),
    ("contain", "SINGULARITY_CAN_USE_CONTAIN"),
)
# every runtime detail is published under each of these prefixes (the reference's names)
PREFIXES = ("SINGULARITY_", "GWMS_SINGULARITY_", "CONTAINERSW_", "GWMS_CONTAINERSW_")
NESTED = "GLIDEIN_NESTED_CONTAINER"
NOT_NESTED = ("no sign of an enclosing container (APPTAINER_CONTAINER and SINGULARITY_CONTAINER "
              "unset, no /.singularity.d, PID 1 is not a container init)")
USERNS = "HAS_UNPRIVILEGED_USER_NAMESPACES"


def _safe(context: Context, name: str, text: str) -> list[Attribute]:
    """``[Attribute.string(name, text)]``, or ``[]`` and a trace line when the value cannot be
    published as it is (a path or URI is never altered to make it fit)."""
    try:
        return [Attribute.string(name, text)]
    except ValueError as exc:
        context.note(f"{name} not published: {exc}: {text[:80]!r}", "warning")
        return []


def _runtime_attributes(context: Context, runtime: RuntimeProbe) -> list[Attribute]:
    described = (
        ("PATH", runtime.candidate.path, False),
        ("VERSION", runtime.version, True),
        ("FULL_VERSION", runtime.full_version, True),
        ("MODE", runtime.privilege, True),
    )
    attributes: list[Attribute] = []
    for suffix, raw, free_text in described:
        text = one_line(raw) if free_text else raw
        if not text:
            continue
        for prefix in PREFIXES:
            attributes += _safe(context, prefix + suffix, text)
    for feature, name in FEATURES:
        if feature in runtime.features:
            attributes += flag(name, runtime.features[feature],
                               runtime.reasons.get(feature) or "the probe recorded no reason")
    return attributes


def _host_attributes(context: Context, runtime: RuntimeProbe | None) -> list[Attribute]:
    """Whether we already run inside a container, and unprivileged user namespaces: from the
    proven runtime's probe, else looked at here (cheap, bounded)."""
    if runtime is not None and "nested" in runtime.features:
        why = runtime.reasons.get("nested", "") if runtime.features["nested"] else ""
    else:
        why = probe.nested(dict(context.environ))
    attributes = [Attribute.boolean(NESTED, bool(why)),
                  Attribute.string(f"{NESTED}_REASON", one_line(why or NOT_NESTED))]
    userns = runtime.reasons.get("user_namespaces", "") if runtime is not None else ""
    userns_reason = ""
    if not userns:
        userns, userns_reason = probe.user_namespaces(context)
    attributes.append(Attribute.string(USERNS, one_line(userns)))
    if userns_reason:
        attributes.append(Attribute.string(f"{USERNS}_REASON", one_line(userns_reason)))
    return attributes


def _images_dict(context: Context, images: Iterable[Image]) -> list[Attribute]:
    """``SINGULARITY_IMAGES_DICT`` with every usable image whose URI can be published."""
    items = []
    for image in images:
        try:
            Attribute.string("SINGULARITY_IMAGES_DICT", format_dict([(image.platform, image.uri)]))
        except ValueError as exc:
            context.note(f"SINGULARITY_IMAGES_DICT: {image.platform} left out: {exc}", "warning")
            continue
        items.append((image.platform, image.uri))
    return _safe(context, "SINGULARITY_IMAGES_DICT", format_dict(items))


def container_platforms(context: Context, images: Iterable[Image]) -> list[str]:
    """The platform keys jobs can ask for here: the usable images' keys that the entry's
    ``GLIDEIN_REQUIRED_OS`` allows, in the entry's order of preference (the images' order when
    it allows ``any``)."""
    keys = [image.platform for image in images]
    allowed = parse_platforms(context.get("GLIDEIN_REQUIRED_OS"))
    if ANY in allowed:
        return keys
    return [name for name in allowed if name in keys]


def _provides(context: Context, item: str) -> list[Attribute]:
    """``GLIDEIN_PROVIDES`` with ``item`` appended as the reference does
    (``${old:+"$old,"}item``); the old value is kept verbatim, and not published over when it
    cannot be published as it is."""
    current = context.get("GLIDEIN_PROVIDES") or ""
    if item in (part.strip() for part in current.split(",")):
        value = current
    else:
        value = f"{current.rstrip(', ')},{item}" if current.strip(", ") else item
    return _safe(context, "GLIDEIN_PROVIDES", value)


@hookimpl
def glidein_attributes_contribute(context: Context, facts: Facts) -> list[Attribute]:
    mode = facts.mode
    if mode is None or mode.outcome in (Mode.DISABLE, Mode.FAIL):
        return []  # DISABLE: GlideinWMS Singularity support is off, publish nothing
    status = Attribute.string("GWMS_SINGULARITY_STATUS", mode.outcome.value)
    if not mode.wants_container:  # NEVER: what the reference publishes, nothing looked for
        return [*flag("HAS_SINGULARITY", False, facts.runtime_reason), status]
    runtime = facts.runtime
    host = _host_attributes(context, runtime)
    if runtime is None or not facts.has_singularity:
        reason = facts.runtime_reason or (
            f"no usable image (platforms {','.join(node_platforms(context))}; see the images "
            "decisions)")
        return [*flag("HAS_SINGULARITY", False, reason), status, *host]
    platforms = container_platforms(context, facts.images)
    return [
        *flag("HAS_SINGULARITY", True), status,
        *_runtime_attributes(context, runtime),
        *host,
        *_images_dict(context, facts.images),
        *_safe(context, "GLIDEIN_CONTAINER_PLATFORMS", ",".join(platforms)),
        *_provides(context, f"singularity/{runtime.privilege}"),
    ]
