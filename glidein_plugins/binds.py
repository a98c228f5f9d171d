"""Bind-mount lists: ``src[:dst[:opts]]`` items separated by commas (no comma in paths; spaces
are kept). Options: ``ro`` or ``rw``."""

from __future__ import annotations

import posixpath

from glidein_plugins.errors import InputError
from glidein_plugins.results import Bind

OPTIONS = ("ro", "rw")
DEFAULTS = ("/hadoop", "/ceph", "/hdfs", "/lizard", "/mnt/hadoop", "/mnt/hdfs", "/etc/hosts",
            "/etc/localtime")
# destinations that would hide the container's own system directories or the job's sandbox
MASKING = ("/", "/proc", "/sys", "/dev", "/srv")


def parse(text: str, where: str = "", origin: str = "") -> list[Bind]:
    """Parse a bind list; raises InputError naming ``where`` and the bad item."""
    if any(char in text for char in "\n\r\0"):
        raise InputError(where, "bind list holds a newline or NUL")
    binds = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        parts = item.split(":")
        if len(parts) > 3:
            raise InputError(where, f"bind {item!r}: expected src[:dst[:opts]]")
        source, target, options = ([*parts, "", ""])[:3]
        for label, path in (("source", source), ("destination", target)):
            if path and (not path.startswith("/") or ".." in path.split("/")):
                raise InputError(where, f"bind {item!r}: {label} must be an absolute path "
                                        "without '..'")
        if not source:
            raise InputError(where, f"bind {item!r}: empty source")
        if options and options not in OPTIONS:
            raise InputError(where, f"bind {item!r}: option {options!r} is not one of "
                                    f"{', '.join(OPTIONS)}")
        binds.append(Bind(normalise(source), normalise(target) if target else "", options,
                          origin))
    return binds


def normalise(path: str) -> str:
    return posixpath.normpath(path) if path != "/" else path


def format_bind(bind: Bind) -> str:
    """``src[:dst[:opts]]`` for one bind (the runtime's ``--bind`` syntax)."""
    text = bind.source
    if (bind.target and bind.target != bind.source) or bind.options:
        text += f":{bind.destination}"
    if bind.options:
        text += f":{bind.options}"
    return text


def format_list(binds: list[Bind]) -> str:
    return ",".join(format_bind(bind) for bind in binds)


def masks_container(destination: str) -> bool:
    return normalise(destination) in MASKING
