"""Typed results that flow between phases: frozen dataclasses, validated when made."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum

from glidein_plugins.protocol.htcondor import classad


class AttrType(str, Enum):
    """GlideinWMS condor_vars.lst types."""

    STRING = "S"  # quoted by condor_startup
    INTEGER = "I"
    EXPR = "C"  # a ClassAd expression, unquoted


@dataclass(frozen=True)
class Attribute:
    """One machine ClassAd attribute to publish.

    ``plugin`` is filled in by the runner (provenance). ``override`` lets a plugin replace a
    value another plugin set; without it two different values for one name are an error.
    """

    name: str
    value: str
    type: AttrType = AttrType.STRING
    plugin: str = ""
    override: bool = False

    def __post_init__(self) -> None:
        classad.check_name(self.name)
        object.__setattr__(self, "type", AttrType(self.type))
        classad.check_value(self.value, self.type.value)

    @classmethod
    def string(cls, name: str, value: str) -> Attribute:
        return cls(name, value, AttrType.STRING)

    @classmethod
    def integer(cls, name: str, value: int) -> Attribute:
        return cls(name, str(int(value)), AttrType.INTEGER)

    @classmethod
    def boolean(cls, name: str, flag: bool) -> Attribute:
        return cls(name, classad.boolean(flag), AttrType.EXPR)

    @classmethod
    def expr(cls, name: str, text: str) -> Attribute:
        return cls(name, text, AttrType.EXPR)

    @property
    def classad_literal(self) -> str:
        """The value as HTCondor will see it in the machine ad."""
        return f'"{self.value}"' if self.type is AttrType.STRING else self.value


def flag(name: str, ok: bool, reason: str = "") -> tuple[Attribute, ...]:
    """``NAME = True``, or ``NAME = False`` plus ``NAME_REASON`` saying why."""
    if ok:
        return (Attribute.boolean(name, True),)
    return Attribute.boolean(name, False), Attribute.string(f"{name}_REASON", one_line(reason))


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0 and C1 control characters
_MACRO_START = re.compile(r"\$(?=\$?[A-Za-z_]*\()")  # the '$' of $(X), $$(X), $ENV(X), ...
_QUOTES = str.maketrans({'"': "`", "'": "`", "\\": "/"})


def one_line(text: object, limit: int = 500) -> str:
    """Squeeze free text (an error message, a command's stderr) into a publishable S value.

    Control characters and runs of whitespace become one space, quotes become a backquote and
    ``\\`` a ``/`` (condor_startup quotes the value verbatim, and its shell ``eval`` wraps it in
    single quotes), HTCondor config macros are broken up (``$(`` becomes ``$ (``), text UTF-8
    cannot encode becomes ``?``, and the result is cut to ``limit`` characters.
    ``Attribute.string`` accepts whatever this returns.
    """
    text = str(text).encode("utf-8", "replace").decode("utf-8")
    text = " ".join(_UNPRINTABLE.sub(" ", text).split())
    text = _MACRO_START.sub("$ ", text.translate(_QUOTES))
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


class Mode(str, Enum):
    """The negotiated Singularity mode (outcome of the FE x Factory table)."""

    DISABLE = "DISABLE"
    NEVER = "NEVER"
    PREFERRED = "PREFERRED"
    REQUIRED = "REQUIRED"
    FAIL = "FAIL"


@dataclass(frozen=True)
class ModeDecision:
    """What the mode negotiation decided, from which inputs, and why."""

    outcome: Mode
    frontend: str
    factory: str
    reason: str

    @property
    def wants_container(self) -> bool:
        return self.outcome in (Mode.PREFERRED, Mode.REQUIRED)


@dataclass(frozen=True)
class RuntimeCandidate:
    """A container runtime binary proposed by a discovery plugin.

    Lower ``priority`` is tried first; ties keep the plugins' call order.
    """

    path: str
    source: str
    priority: int = 100
    plugin: str = ""


@dataclass(frozen=True)
class RuntimeProbe:
    """What probing one candidate showed. ``ok`` False carries the ``reason``."""

    candidate: RuntimeCandidate
    ok: bool
    reason: str = ""
    version: str = ""
    full_version: str = ""
    flavour: str = ""  # apptainer | singularity-ce | singularity-pro | singularity
    privilege: str = ""  # privileged | fakeroot | unprivileged
    features: Mapping[str, bool] = field(default_factory=dict)
    reasons: Mapping[str, str] = field(default_factory=dict)  # why a feature is False, notes
    test_image: str = ""  # the image the container test ran (or would have run) in
    test_image_source: str = ""  # where that image came from (images dict, APPTAINER_TEST_IMAGE)
    test_image_failed: bool = False  # ``reason`` is the test image's fault, not the runtime's


@dataclass(frozen=True)
class Image:
    """One entry of the images dict: a platform key (``rhel9``, ``default``) and its URI."""

    platform: str
    uri: str
    source: str = ""


@dataclass(frozen=True)
class Bind:
    """A bind mount ``source[:target[:options]]``; an empty target means the source path."""

    source: str
    target: str = ""
    options: str = ""
    origin: str = ""

    @property
    def destination(self) -> str:
        return self.target or self.source


@dataclass(frozen=True)
class BindVerdict:
    """A plugin's judgement of one bind. ``ok`` False drops the bind, with the reason."""

    bind: Bind
    ok: bool
    reason: str = ""
    plugin: str = ""


@dataclass(frozen=True)
class GpuDevice:
    """One usable GPU (a MIG instance counts as one)."""

    vendor: str  # nvidia | amd | other
    name: str
    uuid: str = ""
    pci_bus_id: str = ""
    memory_mb: int = 0
    capability: str = ""
    driver_version: str = ""
    mig: bool = False
    source: str = ""


@dataclass(frozen=True)
class Library:
    """A library or toolkit found on the node (CUDA, ROCm, an OpenCL ICD, ...)."""

    name: str
    version: str = ""
    path: str = ""
    source: str = ""


@dataclass(frozen=True)
class Facts:
    """Everything the phases have learnt so far; each phase returns a new copy."""

    mode: ModeDecision | None = None
    runtime: RuntimeProbe | None = None
    rejected_runtimes: tuple[RuntimeProbe, ...] = ()
    gpus: tuple[GpuDevice, ...] = ()
    libraries: tuple[Library, ...] = ()
    images: tuple[Image, ...] = ()
    image: Image | None = None  # the node's default image, chosen for its platforms
    binds: tuple[Bind, ...] = ()
    rejected_binds: tuple[BindVerdict, ...] = ()
    # why jobs get no image here, set only where the entry opted into failing for it
    # (``SINGULARITY_IMAGE_REQUIRED``, ``settings.images.require_platform_image``)
    image_problem: str = ""

    def with_(self, **changes: object) -> Facts:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def has_singularity(self) -> bool:
        """A proven runtime, and no missing image the entry made fatal: jobs can run in
        containers (those that bring their own image, at least)."""
        return self.runtime is not None and not self.image_problem

    @property
    def singularity_reason(self) -> str:
        """Why ``has_singularity`` is False ('' when it is True)."""
        if self.has_singularity:
            return ""
        return self.image_problem or self.runtime_reason

    @property
    def runtime_reason(self) -> str:
        """Why there is no working runtime: every candidate tried and why it failed."""
        if self.runtime is not None:
            return ""
        if self.mode is not None and not self.mode.wants_container:
            return f"containers not wanted: {self.mode.reason}"
        if not self.rejected_runtimes:
            return "no container runtime found: no candidate binary was proposed"
        image_failed = [probe for probe in self.rejected_runtimes if probe.test_image_failed]
        if image_failed and all(probe.test_image_failed or not probe.version
                                for probe in self.rejected_runtimes):
            # every runtime that answered failed on the test image: its problem, not theirs
            first = image_failed[0]
            tried = "; ".join(f"{probe.candidate.path}: {probe.reason}"
                              for probe in self.rejected_runtimes)
            return (f"test image problem, not a missing runtime: {len(image_failed)} "
                    f"runtime(s) found, none proven with the test image {first.test_image} "
                    f"({first.test_image_source}): {tried}")
        tried = "; ".join(
            f"{probe.candidate.path} ({probe.candidate.source}): {probe.reason}"
            for probe in self.rejected_runtimes
        )
        return f"no working container runtime among {len(self.rejected_runtimes)} tried: {tried}"


@dataclass(frozen=True)
class JobRequest:
    """A job about to start: its argv, its job and machine ads (attribute -> expression text)."""

    argv: tuple[str, ...]
    job_ad: Mapping[str, str] = field(default_factory=dict)
    machine_ad: Mapping[str, str] = field(default_factory=dict)
    cwd: str = ""


@dataclass(frozen=True)
class ContainerInvocation:
    """How to start a job: the full argv (runtime first) and the variables to set for the
    runtime over the job's environment (the built-in ``launch`` gives the whole environment)."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    image: str = ""
    reason: str = ""


@dataclass(frozen=True)
class TraceEvent:
    """One line of the decision trace: which phase and plugin decided what."""

    phase: str
    plugin: str
    message: str
    level: str = "info"  # info | warning | error
