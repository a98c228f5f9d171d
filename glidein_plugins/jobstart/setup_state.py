"""What setup decided, kept for job start: ``<work dir>/.glidein_plugins/setup_state.json``.

Setup (``session.run_setup``) writes the file atomically at the end of every successful setup,
whatever the mode, with its ``decision`` for job start: ``container`` (the wrapper starts each
job's container), ``native`` (HTCondor does, the wrapper corrects its line) or ``bare`` (no
container: NEVER, DISABLE); it publishes its absolute path as ``GLIDEIN_PLUGINS_STATE`` (a
machine attribute) for ``container`` and ``native``. Beside it, ``save`` writes
``decision``: shell assignments (``_gp_decision``, ``_gp_state``, ``_gp_python``: the Python
setup ran with, ``_gp_dir``: the directory holding this package), which the job wrapper (a
shell) sources without starting anything. A failed setup removes it (``forget``): the wrapper
then fails every job rather than guess. The job wrapper finds the state beside itself when
GlideinWMS concatenated it into ``condor_job_wrapper.sh`` in the glidein's work dir, else in
the machine ad: never in the job's environment, which the job controls. It reads it for every
job, so this module is on the per-job path: it imports nothing but ``os``/``sys``, and reads
the JSON with the C scanner of the standard ``json`` package (``_json``) without importing
``json`` itself (which brings ``re`` in); the records are plain read-only classes, not
dataclasses (whose import costs more than starting the interpreter). ``facts()`` converts to
the typed ``results.Facts`` only for plugins.

The file (``"version": 1``)::

    {"version": 1, "entry": "...", "work_dir": "...",
     "mode": {"outcome": "PREFERRED", "frontend": "...", "factory": "...", "reason": "..."},
     "has_singularity": true, "reason": "why not, when false",
     "runtime": {"path", "source", "version", "full_version", "flavour", "privilege",
                 "features": {name: bool}, "reasons": {name: str}} or null,
     "images": [{"platform", "uri", "source"}], "default_image": {...} or null,
     "binds": [{"source", "target", "options", "origin"}],
     "gpus": [GpuDevice fields], "libraries": [Library fields],
     "launch": {the launch plugin's settings, merged over its defaults},
     "tmp_dir": "...", "required_os": "...",
     "restrictions": {"names": ["cvmfs"], "cvmfs_root": "/cvmfs"},
     "container_env": "...", "container_env_clearlist": "...",
     "job_hooks": ["plugins implementing glidein_job_launch besides the built-in launch"],
     "decision": "container" | "native" | "bare"}
"""

from __future__ import annotations

import os

from glidein_plugins._where import INSTALL_DIR

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path
    from typing import Any, ClassVar, TypeVar

    from glidein_plugins.errors import InputError
    from glidein_plugins.spec.results import Facts

    _R = TypeVar("_R", bound="Record")

VERSION = 1
ATTRIBUTE = "GLIDEIN_PLUGINS_STATE"  # the machine attribute and job environment variable
RELATIVE_PATH = os.path.join(".glidein_plugins", "setup_state.json")  # under the work dir
DECISION = "decision"  # beside the state: the decision, state, Python and package for the shell
MODES_WITH_CONTAINERS = ("PREFERRED", "REQUIRED")
DECISIONS = ("container", "native", "bare")  # what job start does: see the module doc


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
    """Everything job start needs from setup (see the module docstring for the file)."""

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
        """The file's content (``from_json``'s inverse)."""
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

    @classmethod
    def from_json(cls, data: object, where: str = "") -> SetupState:
        """The state in ``data`` (parsed JSON); InputError naming ``where`` and the key."""
        return _Reader(where).state(data)

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


def from_facts(facts: Facts, *, entry: str, work_dir: str, launch: Mapping[str, Any],
               tmp_dir: str, required_os: str = "", restrictions: Iterable[str] = ("cvmfs",),
               cvmfs_root: str = "/cvmfs", container_env: str = "",
               container_env_clearlist: str = "", job_hooks: Iterable[str] = (),
               decision: str = "") -> SetupState:
    """The state for what a setup decided (``facts``) and the entry's job-start inputs."""
    from dataclasses import asdict  # noqa: PLC0415 - setup only

    if facts.mode is None:
        raise ValueError("no mode was negotiated")
    probe = facts.runtime
    runtime = None if probe is None else RuntimeState(
        probe.candidate.path, source=probe.candidate.source, version=probe.version,
        full_version=probe.full_version, flavour=probe.flavour, privilege=probe.privilege,
        features=probe.features, reasons=probe.reasons)
    mode = facts.mode
    return SetupState(
        entry=entry, work_dir=work_dir,
        mode=ModeState(mode.outcome.value, mode.frontend, mode.factory, mode.reason),
        has_singularity=facts.has_singularity, reason=facts.singularity_reason,
        runtime=runtime,
        images=[ImageState(image.platform, image.uri, image.source) for image in facts.images],
        default_image=None if facts.image is None else ImageState(
            facts.image.platform, facts.image.uri, facts.image.source),
        binds=[BindState(bind.source, bind.target, bind.options, bind.origin)
               for bind in facts.binds],
        gpus=[asdict(gpu) for gpu in facts.gpus],
        libraries=[asdict(library) for library in facts.libraries],
        launch=launch, tmp_dir=tmp_dir, required_os=required_os, restrictions=restrictions,
        cvmfs_root=cvmfs_root, container_env=container_env,
        container_env_clearlist=container_env_clearlist, job_hooks=job_hooks,
        decision=decision)


def _fields(record: Record) -> dict[str, Any]:
    return {name: (dict(value) if isinstance(value, dict) else value)
            for name in record.__slots__ for value in (getattr(record, name),)}


def path_in(work_dir: str | Path) -> str:
    """The state file's absolute path for the glidein work dir ``work_dir``."""
    return os.path.join(os.path.abspath(os.fspath(work_dir)), RELATIVE_PATH)


def save(path: str | Path, state: SetupState) -> None:
    """Write ``state`` to ``path`` atomically (its directory made if needed), and beside it
    ``DECISION`` for the job wrapper: the decision, ``path``, this Python and the directory
    this package was imported from, as single-quoted shell assignments (a path that is not
    absolute, or holds a newline, is left empty).

    Raises ConfigError (an InputError) naming the path when it cannot be written.
    """
    import json  # noqa: PLC0415
    import sys  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from glidein_plugins.errors import ConfigError  # noqa: PLC0415
    from glidein_plugins.node import atomic  # noqa: PLC0415

    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(str(target.parent), f"cannot make the directory: "
                                              f"{exc.strerror or exc}") from None
    text = json.dumps(state.to_json(), sort_keys=True, allow_nan=False)
    atomic.write_text(target, text + "\n")
    package_dir = INSTALL_DIR
    if state.decision not in DECISIONS:
        raise ValueError(f"setup decision {state.decision!r} is not one of {DECISIONS}")
    values = {"_gp_state": os.path.abspath(target), "_gp_python": sys.executable or "",
              "_gp_dir": package_dir}
    lines = [f"_gp_decision={state.decision}"]
    lines += [f"{name}='{_quoted(value)}'" for name, value in values.items()]
    atomic.write_text(target.parent / DECISION, "".join(f"{line}\n" for line in lines))


def _quoted(path: str) -> str:
    """``path`` for inside single quotes ('' unless absolute and on one line)."""
    if not os.path.isabs(path) or "\n" in path or "\0" in path:
        return ""
    return path.replace("'", "'\\''")


def forget(work_dir: str | Path) -> None:
    """Remove the decision of an earlier setup in ``work_dir`` (a failed setup leaves none:
    the wrapper then fails every job)."""
    try:  # noqa: SIM105 - contextlib is one more import on the per-job path
        os.unlink(os.path.join(os.path.dirname(path_in(work_dir)), DECISION))
    except FileNotFoundError:
        pass


def load(path: str | Path) -> SetupState:
    """The state saved at ``path``.

    Raises ``errors.InputError`` (a ValueError) naming the path and why: missing, unreadable,
    not JSON (with the line), another version, a key missing or of the wrong type.
    """
    where = os.fspath(path)
    try:
        with open(where, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise _error(where, f"cannot read the setup state: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise _error(where, f"the setup state is not UTF-8 text: {exc.reason} at byte "
                            f"{exc.start}") from None
    return SetupState.from_json(parse_json(text, where), where)


def locate(machine_ad: Mapping[str, str] | None) -> str:
    """Where the state file is: the machine ad's ``GLIDEIN_PLUGINS_STATE`` (a string literal;
    ``job_ad.Ad`` or any mapping of attribute to expression text); '' when it does not say.
    Never the environment: at job start it is the job's."""
    if machine_ad is None:
        return ""
    string = getattr(machine_ad, "string", None)
    if string is not None:
        return str(string(ATTRIBUTE) or "")
    text = machine_ad.get(ATTRIBUTE, "").strip()
    if len(text) >= 2 and text[0] == text[-1] == '"' and "\\" not in text:
        return text[1:-1]
    return ""


# --- reading JSON without importing json (re) ---------------------------------------------------

_JSON_SPACE = " \t\n\r"


class _ScannerContext:
    """What ``_json.make_scanner`` reads from a decoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: ClassVar[dict[str, str]] = {}  # the scanner's key-interning table

    @staticmethod
    def parse_constant(name: str) -> float:
        raise ValueError(f"{name} is not allowed")


def parse_json(text: str, where: str = "") -> object:
    """``json.loads(text)`` through the C scanner when there is one (CPython), else through
    ``json`` (PyPy); NaN and Infinity are refused, as ``save`` never writes them.

    Raises InputError naming ``where`` (and the line) for text that is not one JSON value.
    """
    start = len(text) - len(text.lstrip(_JSON_SPACE))
    try:
        from _json import make_scanner  # noqa: PLC0415 - CPython's C scanner
    except ImportError:  # PyPy: its json module is fast to import
        import json  # noqa: PLC0415

        scanner = json.JSONDecoder(parse_constant=_ScannerContext.parse_constant).raw_decode
    else:
        scanner = make_scanner(_ScannerContext())  # type: ignore[arg-type,assignment]
    try:
        value, end = scanner(text, start)
    except StopIteration as stop:
        raise _json_error(where, text, stop.value if isinstance(stop.value, int) else start,
                          "expected a value") from None
    except ValueError as exc:  # json.JSONDecodeError, a refused constant, a bad number
        raise _json_error(where, text, getattr(exc, "pos", start),
                          getattr(exc, "msg", str(exc))) from None
    finally:
        _ScannerContext.memo.clear()
    if text[end:].strip(_JSON_SPACE):
        raise _json_error(where, text, end, "extra data after the value")
    return value


def _json_error(where: str, text: str, position: int, why: str) -> InputError:
    line = text.count("\n", 0, position) + 1
    return _error(f"{where}:{line}" if where else f"line {line}",
                  f"the setup state is not valid JSON: {why}")


def _error(where: str, message: str) -> InputError:
    from glidein_plugins.errors import InputError  # noqa: PLC0415

    return InputError(where, message)


class _Reader:
    """Checks the parsed file, key by key; every error names the file and the key."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, key: str, why: str) -> InputError:
        return _error(self.where, f"setup state key {key!r}: {why}")

    def mapping(self, value: object, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected an object, found {_kind(value)}")
        return value

    def field(self, data: Mapping[str, Any], name: str, kind: type, key: str,
              default: object = ...) -> Any:
        path = f"{key}.{name}" if key else name
        if name not in data:
            if default is ...:
                raise self.fail(path, "missing")
            return default
        value = data[name]
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, kind)
        if not ok:
            raise self.fail(path, f"expected {_KIND_NAMES.get(kind, kind.__name__)}, found "
                                  f"{_kind(value)}")
        return value

    def strings(self, data: Mapping[str, Any], name: str, key: str) -> list[str]:
        items = self.field(data, name, list, key, [])
        for number, item in enumerate(items):
            if not isinstance(item, str):
                raise self.fail(f"{key}.{name}[{number}]" if key else f"{name}[{number}]",
                                f"expected a string, found {_kind(item)}")
        return list(items)

    def string_map(self, data: Mapping[str, Any], name: str, key: str,
                   kind: type) -> dict[str, Any]:
        found = self.mapping(self.field(data, name, dict, key, {}), f"{key}.{name}")
        for item, value in found.items():
            if not isinstance(value, kind):
                raise self.fail(f"{key}.{name}.{item}", f"expected "
                                f"{_KIND_NAMES.get(kind, kind.__name__)}, found {_kind(value)}")
        return found

    def objects(self, data: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
        return [self.mapping(item, f"{name}[{number}]")
                for number, item in enumerate(self.field(data, name, list, "", []))]

    def image(self, value: object, key: str) -> ImageState:
        data = self.mapping(value, key)
        return ImageState(self.field(data, "platform", str, key),
                          self.field(data, "uri", str, key),
                          self.field(data, "source", str, key, ""))

    def state(self, value: object) -> SetupState:
        data = self.mapping(value, "(top level)")
        version = self.field(data, "version", int, "")
        if version != VERSION:
            raise self.fail("version", f"{version} is not {VERSION}: written by another "
                                       "version of glidein_plugins; run setup again")
        mode = self.mapping(self.field(data, "mode", dict, ""), "mode")
        runtime = None
        raw_runtime = data.get("runtime")
        if raw_runtime is not None:
            found = self.mapping(raw_runtime, "runtime")
            texts = {name: self.field(found, name, str, "runtime", "") for name in (
                "source", "version", "full_version", "flavour", "privilege")}
            runtime = RuntimeState(
                self.field(found, "path", str, "runtime"), **texts,
                features=self.string_map(found, "features", "runtime", bool),
                reasons=self.string_map(found, "reasons", "runtime", str))
        default = data.get("default_image")
        restrictions = self.mapping(self.field(data, "restrictions", dict, "", {}),
                                    "restrictions")
        binds = []
        for number, item in enumerate(self.objects(data, "binds")):
            key = f"binds[{number}]"
            binds.append(BindState(self.field(item, "source", str, key),
                                   *(self.field(item, name, str, key, "")
                                     for name in ("target", "options", "origin"))))
        return SetupState(
            version=version,
            entry=self.field(data, "entry", str, ""),
            work_dir=self.field(data, "work_dir", str, "", ""),
            mode=ModeState(self.field(mode, "outcome", str, "mode"),
                           *(self.field(mode, name, str, "mode", "")
                             for name in ("frontend", "factory", "reason"))),
            has_singularity=self.field(data, "has_singularity", bool, ""),
            reason=self.field(data, "reason", str, "", ""),
            runtime=runtime,
            images=[self.image(item, f"images[{number}]")
                    for number, item in enumerate(self.field(data, "images", list, "", []))],
            default_image=None if default is None else self.image(default, "default_image"),
            binds=binds,
            gpus=self.objects(data, "gpus"),
            libraries=self.objects(data, "libraries"),
            launch=self.field(data, "launch", dict, "", {}),
            tmp_dir=self.field(data, "tmp_dir", str, ""),
            required_os=self.field(data, "required_os", str, "", ""),
            restrictions=self.strings(restrictions, "names", "restrictions") or ["cvmfs"],
            cvmfs_root=self.field(restrictions, "cvmfs_root", str, "restrictions", "/cvmfs"),
            container_env=self.field(data, "container_env", str, "", ""),
            container_env_clearlist=self.field(data, "container_env_clearlist", str, "", ""),
            job_hooks=self.strings(data, "job_hooks", ""),
            decision=self.decision(data),
        )

    def decision(self, data: Mapping[str, Any]) -> str:
        decision = self.field(data, "decision", str, "")
        if decision not in DECISIONS:
            raise self.fail("decision", f"{decision!r} is not one of {', '.join(DECISIONS)}")
        return str(decision)


_KIND_NAMES = {str: "a string", bool: "true or false", int: "an integer", float: "a number",
               list: "an array", dict: "an object"}


def _kind(value: object) -> str:
    if value is None:
        return "null"
    for kind in (bool, str, int, float, list, dict):
        if isinstance(value, kind):
            return _KIND_NAMES[kind]
    return type(value).__name__
