"""The setup state file's JSON read back (``read``) without importing ``json`` (which brings
``re`` in): the C scanner of the standard ``json`` package (``_json``), then every key checked;
each error names the file and the key.

On the per-job path: imports nothing at load time.
"""

from __future__ import annotations

from glidein_plugins.jobstart.records import (
    DECISIONS,
    VERSION,
    BindState,
    ImageState,
    ModeState,
    RuntimeState,
    SetupState,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, ClassVar

    from glidein_plugins.errors import InputError


def read(data: object, where: str = "") -> SetupState:
    """The state in ``data`` (parsed JSON); InputError naming ``where`` and the key."""
    return _Reader(where).state(data)


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
    return state_error(f"{where}:{line}" if where else f"line {line}",
                  f"the setup state is not valid JSON: {why}")


def state_error(where: str, message: str) -> InputError:
    from glidein_plugins.errors import InputError  # noqa: PLC0415

    return InputError(where, message)


class _Reader:
    """Checks the parsed file, key by key; every error names the file and the key."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, key: str, why: str) -> InputError:
        return state_error(self.where, f"setup state key {key!r}: {why}")

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
