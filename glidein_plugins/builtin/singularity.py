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
  A runtime proven with a test image while no image serves the node's platforms still gives
  ``HAS_SINGULARITY=True`` (GlideinWMS's default; jobs must bring their own image), unless the
  entry opted into failing for it (see the ``images`` plugin). ``GLIDEIN_SINGULARITY_TEST_IMAGE``
  (and ``_ORIGIN``) say which image proved the runtime.
* DISABLE (and FAIL): nothing.

GlideinWMS's ``singularity_setup.sh`` may run in the same glidein, before or after us. Whenever
we publish, the names it and we own (``FAMILY``) form one consistent set: what we do not publish
this time but glidein_config holds (the reference's ``SINGULARITY_PATH`` next to our
``HAS_SINGULARITY=False``, say) is cleared, written empty with a not-required condor_vars line
(``condor_startup.sh`` then leaves it out of the machine ad), and ``singularity/*`` items of
``GLIDEIN_PROVIDES`` other than ours are dropped. Inputs are never cleared: the images dict
(published over only when True), ``GLIDEIN_REQUIRED_OS`` and ``GLIDEIN_DEBUG_OUTPUT``.

Every False comes with a ``<NAME>_REASON`` string. A value that cannot be published safely (a
path holding a quote, say) is left out and the decision trace says why; free text (versions,
reasons) is squeezed onto one publishable line instead. ``GLIDEIN_REQUIRED_OS`` is never
written (the reference overwrites the entry's value with ``any``), and neither are the names
the HTCondor startd computes itself (``HasSingularity``, ``SingularityVersion``, ...).
"""

from __future__ import annotations

from collections.abc import Iterable

from glidein_plugins import hookimpl
from glidein_plugins.container.images import ANY, format_dict, node_platforms, parse_platforms
from glidein_plugins.container.runtime import PREFIXES, nested, user_namespaces
from glidein_plugins.spec.context import Context
from glidein_plugins.spec.results import Attribute, Facts, Image, Mode, RuntimeProbe, flag, one_line

# probe feature -> attribute; each published only when the probe tested it
FEATURES = (
    ("missing_target", "SINGULARITY_CAN_BIND_MISSING_TARGET"),
    ("sif", "SINGULARITY_CAN_USE_SIF"),
    ("pid_namespaces", "SINGULARITY_CAN_USE_PID_NAMESPACES"),
    ("contain", "SINGULARITY_CAN_USE_CONTAIN"),
)
NESTED = "GLIDEIN_NESTED_CONTAINER"
NOT_NESTED = ("no sign of an enclosing container (APPTAINER_CONTAINER and SINGULARITY_CONTAINER "
              "unset, no /.singularity.d, PID 1 is not a container init)")
USERNS = "HAS_UNPRIVILEGED_USER_NAMESPACES"
TEST_IMAGE = "GLIDEIN_SINGULARITY_TEST_IMAGE"
DICT = "SINGULARITY_IMAGES_DICT"
PROVIDES_ITEM = "singularity/"
# the output names of this plugin and of GlideinWMS's singularity_setup.sh, cleared when stale
FAMILY = (
    "HAS_SINGULARITY", "HAS_SINGULARITY_REASON", "GWMS_SINGULARITY_STATUS",
    *(prefix + suffix for suffix in ("PATH", "VERSION", "FULL_VERSION", "MODE")
      for prefix in PREFIXES),
    *(name + suffix for _, name in FEATURES for suffix in ("", "_REASON")),
    NESTED, f"{NESTED}_REASON", USERNS, f"{USERNS}_REASON",
    "GLIDEIN_CONTAINER_PLATFORMS", TEST_IMAGE, f"{TEST_IMAGE}_ORIGIN",
)


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
        why = nested(dict(context.environ))
    attributes = [Attribute.boolean(NESTED, bool(why)),
                  Attribute.string(f"{NESTED}_REASON", one_line(why or NOT_NESTED))]
    userns = runtime.reasons.get("user_namespaces", "") if runtime is not None else ""
    userns_reason = ""
    if not userns:
        userns, userns_reason = user_namespaces(context)
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


def _provides(context: Context, item: str = "") -> list[Attribute]:
    """``GLIDEIN_PROVIDES`` with ``item`` appended as the reference does
    (``${old:+"$old,"}item``), and any other ``singularity/*`` item (the reference's, left from
    a run that found another mode, or from before a False) dropped; ``item`` '' drops them all
    and publishes nothing when there is none. The rest is kept verbatim, and not published
    over when it cannot be published as it is."""
    original = context.get("GLIDEIN_PROVIDES") or ""
    parts = original.split(",")
    stale = [part for part in parts
             if part.strip().startswith(PROVIDES_ITEM) and part.strip() != item]
    current = ",".join(part for part in parts if part not in stale) if stale else original
    if not item:
        return _safe(context, "GLIDEIN_PROVIDES", current.strip(", ")) if stale else []
    if item in (part.strip() for part in current.split(",")):
        value = current
    else:
        value = f"{current.rstrip(', ')},{item}" if current.strip(", ") else item
    return _safe(context, "GLIDEIN_PROVIDES", value)


def _test_image(context: Context, runtime: RuntimeProbe) -> list[Attribute]:
    """Which image proved the runtime, and where it came from."""
    if not runtime.test_image:
        return []
    return [*_safe(context, TEST_IMAGE, runtime.test_image),
            Attribute.string(f"{TEST_IMAGE}_ORIGIN", one_line(runtime.test_image_source))]


def _without_stale(context: Context, published: list[Attribute]) -> list[Attribute]:
    """``published`` plus an empty value for every ``FAMILY`` name glidein_config holds that
    is not published now (left by the reference's script or an earlier run), and for an images
    dict glidein_config holds empty (the reference publishes it Required=Y, and an empty
    required value makes ``condor_startup.sh`` fail the glidein)."""
    names = {attribute.name for attribute in published}
    stale = [name for name in FAMILY
             if name not in names and context.glidein_config.get(name)]
    if DICT not in names and context.glidein_config.get(DICT) == "":
        stale.append(DICT)
    if stale:
        context.note(f"cleared, left by an earlier run or GlideinWMS's singularity_setup.sh: "
                     f"{', '.join(stale)}")
    return [*published, *(Attribute.string(name, "") for name in stale)]


@hookimpl
def glidein_attributes_contribute(context: Context, facts: Facts) -> list[Attribute]:
    mode = facts.mode
    if mode is None or mode.outcome in (Mode.DISABLE, Mode.FAIL):
        return []  # DISABLE: GlideinWMS Singularity support is off, publish nothing
    status = Attribute.string("GWMS_SINGULARITY_STATUS", mode.outcome.value)
    if not mode.wants_container:  # NEVER: what the reference publishes, nothing looked for
        return _without_stale(context, [*flag("HAS_SINGULARITY", False, facts.runtime_reason),
                                        status, *_provides(context)])
    runtime = facts.runtime
    host = _host_attributes(context, runtime)
    if runtime is None or not facts.has_singularity:
        reason = facts.singularity_reason or (
            f"no usable image (platforms {','.join(node_platforms(context))}; see the images "
            "decisions)")
        return _without_stale(context, [*flag("HAS_SINGULARITY", False, reason), status, *host,
                                        *_provides(context)])
    platforms = container_platforms(context, facts.images)
    return _without_stale(context, [
        *flag("HAS_SINGULARITY", True), status,
        *_runtime_attributes(context, runtime),
        *_test_image(context, runtime),
        *host,
        *_images_dict(context, facts.images),
        *_safe(context, "GLIDEIN_CONTAINER_PLATFORMS", ",".join(platforms)),
        *_provides(context, f"{PROVIDES_ITEM}{runtime.privilege}"),
    ])
