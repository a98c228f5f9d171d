"""Typed results that flow between phases: frozen dataclasses, validated when made."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Mapping, Optional, Tuple

from glidein_plugins import classad
from glidein_plugins.errors import FailureType


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


def flag(name: str, ok: bool, reason: str = "") -> Tuple[Attribute, ...]:
    """``NAME = True``, or ``NAME = False`` plus ``NAME_REASON`` saying why."""
    if ok:
        return (Attribute.boolean(name, True),)
    return Attribute.boolean(name, False), Attribute.string(f"{name}_REASON", one_line(reason))


def one_line(text: str, limit: int = 500) -> str:
    """Squeeze free text into something publishable as an S attribute."""
    text = " ".join(str(text).split()).replace('"', "'").replace("\\", "/").replace("$(", "$ (")
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
    flavour: str = ""  # apptainer | singularity
    privilege: str = ""  # privileged | fakeroot | unprivileged
    features: Mapping[str, bool] = field(default_factory=dict)


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

    mode: Optional[ModeDecision] = None
    runtime: Optional[RuntimeProbe] = None
    rejected_runtimes: Tuple[RuntimeProbe, ...] = ()
    gpus: Tuple[GpuDevice, ...] = ()
    libraries: Tuple[Library, ...] = ()
    images: Tuple[Image, ...] = ()
    binds: Tuple[Bind, ...] = ()
    rejected_binds: Tuple[BindVerdict, ...] = ()

    def with_(self, **changes: object) -> Facts:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def runtime_reason(self) -> str:
        """Why there is no working runtime: every candidate tried and why it failed."""
        if self.runtime is not None:
            return ""
        if self.mode is not None and not self.mode.wants_container:
            return f"containers not wanted: {self.mode.reason}"
        if not self.rejected_runtimes:
            return "no container runtime found: no candidate binary was proposed"
        tried = "; ".join(
            f"{probe.candidate.path} ({probe.candidate.source}): {probe.reason}"
            for probe in self.rejected_runtimes
        )
        return f"no working container runtime among {len(self.rejected_runtimes)} tried: {tried}"


@dataclass(frozen=True)
class JobRequest:
    """A job about to start: its argv, its job and machine ads (attribute -> expression text)."""

    argv: Tuple[str, ...]
    job_ad: Mapping[str, str] = field(default_factory=dict)
    machine_ad: Mapping[str, str] = field(default_factory=dict)
    cwd: str = ""


@dataclass(frozen=True)
class ContainerInvocation:
    """How to start a job: the full argv (runtime first) and extra environment."""

    argv: Tuple[str, ...]
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


@dataclass(frozen=True)
class Failure:
    """Why the glidein must stop."""

    type: FailureType
    message: str
