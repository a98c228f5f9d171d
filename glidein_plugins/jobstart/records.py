"""The records of job start: read-only classes with value equality (``Record``, a light
stand-in for a frozen dataclass, whose import costs more than starting the interpreter), and
what setup decided for job start (``SetupState`` and its parts). ``SetupState.facts()`` converts
to the typed ``results.Facts`` (only for plugins); ``setup_state.from_facts`` back.

On the per-job path: imports only ``os`` (nothing at all at load time).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any, TypeVar

    from glidein_plugins.spec.results import Facts

    _R = TypeVar("_R", bound="Record")

VERSION = 1  # of the setup state file
MODES_WITH_CONTAINERS = ("PREFERRED", "REQUIRED")
DECISIONS = ("container", "native", "bare")  # what job start does: see setup_state's doc


class Record:
    """A read-only record with value equality (a light stand-in for a frozen dataclass)."""

    __slots__: tuple[str, ...] = ()

    def _init(self, **values: object) -> None:
        for name in self.__slots__:
            object.__setattr__(self, name, values[name])

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def replace(self: _R, **changes: Any) -> _R:
        """A copy with ``changes`` (as ``dataclasses.replace``)."""
        values = {name: getattr(self, name) for name in self.__slots__}
        values.update(changes)
        return type(self)(**values)

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Record) and type(other) is type(self) and (
            self._values() == other._values())

    def __hash__(self) -> int:
        return hash((type(self).__name__, *(repr(value) for value in self._values())))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"


class RuntimeState(Record):
    """The proven runtime: binary, version, flavour, privilege mode and probed features."""

    __slots__ = (
        "features",
        "flavour",
        "full_version",
        "path",
        "privilege",
        "reasons",
        "source",
        "version",
    )
    path: str
    source: str
    version: str
    full_version: str
    flavour: str
    privilege: str
    features: Mapping[str, bool]  # nested, contain, pid_namespaces, missing_target, sif
    reasons: Mapping[str, str]

    def __init__(self, path: str, *, source: str = "", version: str = "",
                 full_version: str = "", flavour: str = "", privilege: str = "",
                 features: Mapping[str, bool] | None = None,
                 reasons: Mapping[str, str] | None = None) -> None:
        self._init(path=path, source=source, version=version, full_version=full_version,
                   flavour=flavour, privilege=privilege, features=dict(features or {}),
                   reasons=dict(reasons or {}))

    def feature(self, name: str, default: bool = False) -> bool:
        """Whether the probe found ``name`` usable (``default`` when it did not say)."""
        return bool(self.features.get(name, default))


class ImageState(Record):
    """A usable image: platform key, URI (rebased, resolved at setup) and where it came from."""

    __slots__ = ("platform", "source", "uri")
    platform: str
    uri: str
    source: str

    def __init__(self, platform: str, uri: str, source: str = "") -> None:
        self._init(platform=platform, uri=uri, source=source)


class BindState(Record):
    """A validated bind mount; an empty ``target`` means the source path."""

    __slots__ = ("options", "origin", "source", "target")
    source: str
    target: str
    options: str
    origin: str

    def __init__(self, source: str, target: str = "", options: str = "",
                 origin: str = "") -> None:
        self._init(source=source, target=target, options=options, origin=origin)

    @property
    def destination(self) -> str:
        return self.target or self.source


class ModeState(Record):
    """The negotiated mode: outcome (``PREFERRED``, ...), the two wishes, and why."""

    __slots__ = ("factory", "frontend", "outcome", "reason")
    outcome: str
    frontend: str
    factory: str
    reason: str

    def __init__(self, outcome: str, frontend: str = "", factory: str = "",
                 reason: str = "") -> None:
        self._init(outcome=outcome, frontend=frontend, factory=factory, reason=reason)


class SetupState(Record):
    """Everything job start needs from setup (``setup_state``'s docstring shows the file)."""

    __slots__ = (
        "binds",
        "container_env",
        "container_env_clearlist",
        "cvmfs_root",
        "decision",
        "default_image",
        "entry",
        "gpus",
        "has_singularity",
        "images",
        "job_hooks",
        "launch",
        "libraries",
        "mode",
        "reason",
        "required_os",
        "restrictions",
        "runtime",
        "tmp_dir",
        "version",
        "work_dir",
    )
    version: int
    entry: str
    work_dir: str
    mode: ModeState
    has_singularity: bool
    reason: str  # why has_singularity is False ('' when it is True)
    runtime: RuntimeState | None
    images: tuple[ImageState, ...]
    default_image: ImageState | None
    binds: tuple[BindState, ...]
    gpus: tuple[Mapping[str, Any], ...]  # results.GpuDevice fields
    libraries: tuple[Mapping[str, Any], ...]  # results.Library fields
    launch: Mapping[str, Any]  # the launch plugin's settings, over its defaults
    tmp_dir: str  # the glidein's local tmp dir: the runtime's caches go below it
    required_os: str  # the entry's GLIDEIN_REQUIRED_OS, as written ('' when unset)
    restrictions: tuple[str, ...]  # SINGULARITY_IMAGE_RESTRICTIONS, parsed
    cvmfs_root: str  # where CVMFS is mounted (CVMFS_MOUNT_DIR, default /cvmfs)
    container_env: str  # GLIDEIN_CONTAINER_ENV, as written
    container_env_clearlist: str  # GLIDEIN_CONTAINER_ENV_CLEARLIST, as written
    job_hooks: tuple[str, ...]  # plugins with glidein_job_launch besides the built-in
    decision: str  # container, native or bare (DECISIONS)

    def __init__(self, *, entry: str, mode: ModeState, work_dir: str = "",
                 has_singularity: bool = False, reason: str = "",
                 runtime: RuntimeState | None = None,
                 images: Iterable[ImageState] = (), default_image: ImageState | None = None,
                 binds: Iterable[BindState] = (), gpus: Iterable[Mapping[str, Any]] = (),
                 libraries: Iterable[Mapping[str, Any]] = (),
                 launch: Mapping[str, Any] | None = None, tmp_dir: str = "",
                 required_os: str = "", restrictions: Iterable[str] = ("cvmfs",),
                 cvmfs_root: str = "/cvmfs", container_env: str = "",
                 container_env_clearlist: str = "", job_hooks: Iterable[str] = (),
                 decision: str = "", version: int = VERSION) -> None:
        if not decision:  # what the mode implies, the wrapper starting the containers
            decision = "container" if mode.outcome in MODES_WITH_CONTAINERS else "bare"
        self._init(decision=decision, version=version, entry=entry, work_dir=work_dir, mode=mode,
                   has_singularity=has_singularity, reason=reason, runtime=runtime,
                   images=tuple(images),
                   default_image=default_image, binds=tuple(binds),
                   gpus=tuple(dict(gpu) for gpu in gpus),
                   libraries=tuple(dict(library) for library in libraries),
                   launch=dict(launch or {}), tmp_dir=tmp_dir, required_os=required_os,
                   restrictions=tuple(restrictions), cvmfs_root=cvmfs_root,
                   container_env=container_env,
                   container_env_clearlist=container_env_clearlist,
                   job_hooks=tuple(job_hooks))

    @property
    def wants_container(self) -> bool:
        """The mode is PREFERRED or REQUIRED."""
        return self.mode.outcome in MODES_WITH_CONTAINERS

    def setting(self, name: str, default: Any = None) -> Any:
        """One of the launch plugin's settings."""
        return self.launch.get(name, default)

    def to_json(self) -> dict[str, Any]:
        """The file's content (``state_json.read``'s inverse)."""
        return {
            "version": self.version, "entry": self.entry, "work_dir": self.work_dir,
            "mode": _fields(self.mode), "has_singularity": self.has_singularity,
            "reason": self.reason,
            "runtime": None if self.runtime is None else _fields(self.runtime),
            "images": [_fields(image) for image in self.images],
            "default_image": None if self.default_image is None else _fields(self.default_image),
            "binds": [_fields(bind) for bind in self.binds],
            "gpus": [dict(gpu) for gpu in self.gpus],
            "libraries": [dict(library) for library in self.libraries],
            "launch": dict(self.launch), "tmp_dir": self.tmp_dir,
            "required_os": self.required_os,
            "restrictions": {"names": list(self.restrictions), "cvmfs_root": self.cvmfs_root},
            "container_env": self.container_env,
            "container_env_clearlist": self.container_env_clearlist,
            "job_hooks": list(self.job_hooks),
            "decision": self.decision,
        }

    def facts(self) -> Facts:
        """What setup decided, as the typed ``Facts`` the hooks receive (imports ``results``)."""
        from glidein_plugins.spec import results  # noqa: PLC0415

        runtime = None
        if self.runtime is not None:
            state = self.runtime
            runtime = results.RuntimeProbe(
                results.RuntimeCandidate(state.path, state.source), True, "", state.version,
                state.full_version, state.flavour, state.privilege, dict(state.features),
                dict(state.reasons))
        mode = self.mode
        outcome = results.Mode(mode.outcome)
        images = tuple(results.Image(i.platform, i.uri, i.source) for i in self.images)
        default = self.default_image
        return results.Facts(
            mode=results.ModeDecision(outcome, mode.frontend, mode.factory, mode.reason),
            runtime=runtime,
            gpus=tuple(results.GpuDevice(**gpu) for gpu in self.gpus),
            libraries=tuple(results.Library(**library) for library in self.libraries),
            images=images,
            image=None if default is None else results.Image(default.platform, default.uri,
                                                             default.source),
            binds=tuple(results.Bind(b.source, b.target, b.options, b.origin)
                        for b in self.binds),
        )


def _fields(record: Record) -> dict[str, Any]:
    return {name: (dict(value) if isinstance(value, dict) else value)
            for name in record.__slots__ for value in (getattr(record, name),)}
