"""Bind-mount lists, GlideinWMS's syntax: ``src[:dst[:opts]]`` items separated by commas.

No comma or colon can be part of a path; spaces inside a path are kept, spaces around an item
or a field are not. Both paths must be absolute, without ``..``; they are normalised (``//``,
``/./`` and a trailing ``/`` removed), and a destination equal to the source is dropped
(``/data:/data`` is ``/data``). Options: ``ro`` or ``rw``.
"""

from __future__ import annotations

from collections.abc import Iterable

from glidein_plugins.errors import InputError
from glidein_plugins.spec.results import Bind

OPTIONS = ("ro", "rw")
DEFAULTS = ("/hadoop", "/ceph", "/hdfs", "/lizard", "/mnt/hadoop", "/mnt/hdfs", "/etc/hosts",
            "/etc/localtime")
# destinations that would hide the container's own system directories or the job's sandbox
MASKING = ("/", "/proc", "/sys", "/dev", "/srv")
_BREAKS_LINE = "\n\r\0"


def parse(text: str, where: str = "", origin: str = "") -> list[Bind]:
    """The binds of a list, in order; raises InputError naming ``where`` and the bad item."""
    if any(char in text for char in _BREAKS_LINE):
        raise InputError(where, "the bind list holds a newline or NUL")
    binds = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        fields = [part.strip() for part in item.split(":")]
        if len(fields) > 3:
            raise InputError(where, f"bind {item!r}: expected src[:dst[:opts]] (a path cannot "
                                    "hold ':')")
        source, target, options = [*fields, "", ""][:3]
        if not source:
            raise InputError(where, f"bind {item!r}: empty source")
        for label, path in (("source", source), ("destination", target)):
            if path and (not path.startswith("/") or ".." in path.split("/")):
                raise InputError(where, f"bind {item!r}: the {label} must be an absolute path "
                                        "without '..'")
        bind = make(source, target, options, origin)
        for label, path in (("source", bind.source), ("destination", bind.target)):
            if path != path.rstrip():  # '/a/ /' is '/a/ ': a field cannot end with a blank
                raise InputError(where, f"bind {item!r}: the {label} ends with a blank "
                                        "component")
        if options and options not in OPTIONS:
            raise InputError(where, f"bind {item!r}: option {options!r} is not one of "
                                    f"{', '.join(OPTIONS)}")
        binds.append(bind)
    return binds


def make(source: str, target: str = "", options: str = "", origin: str = "") -> Bind:
    """A ``Bind`` in canonical form: normalised paths, no target when it equals the source."""
    source = normalise(source)
    target = normalise(target) if target else ""
    return Bind(source, "" if target == source else target, options, origin)


def normalise(path: str) -> str:
    """``path`` without empty or ``.`` components and without a trailing ``/``."""
    return "/" + "/".join(part for part in path.split("/") if part not in ("", "."))


def format_bind(bind: Bind) -> str:
    """``src[:dst[:opts]]`` for one bind (the runtime's ``--bind`` syntax).

    Raises ValueError for a bind that a bind list cannot carry.
    """
    for path in (bind.source, bind.target):
        if any(char in path for char in ":," + _BREAKS_LINE) or path != path.strip():
            raise ValueError(f"bind path {path!r} cannot be written in a bind list")
    if bind.options not in ("", *OPTIONS):
        raise ValueError(f"bind option {bind.options!r} is not one of {', '.join(OPTIONS)}")
    text = bind.source
    if (bind.target and bind.target != bind.source) or bind.options:
        text += f":{bind.destination}"
    if bind.options:
        text += f":{bind.options}"
    return text


def format_list(binds: Iterable[Bind]) -> str:
    """The bind list for ``binds`` (inverse of ``parse`` for canonical binds)."""
    return ",".join(format_bind(bind) for bind in binds)


def masks_container(destination: str) -> bool:
    """True for a destination that would hide the container's own ``/``, ``/proc``, ..."""
    return normalise(destination) in MASKING
