"""What job start does next (``Plan``), or why the job must not start (``WrapFailure``), and
the plan as shell commands for the job wrapper's ``eval``.

On the per-job path: imports only ``os``.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

ENV_BINARY = "/usr/bin/env"  # by its path: never a function of the job's


class WrapFailure(Exception):
    """The job must not start, because of ``message``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Plan:
    """What happens next: ``exec`` ``argv`` (the runtime: ``container``), or go on with
    ``argv`` (the wrapper's remaining fragments, then the job); ``env``: the whole environment
    for it (None: unchanged); ``warnings`` go to stderr, ``notes`` too when tracing."""

    __slots__ = ("argv", "container", "env", "notes", "warnings")

    def __init__(self, argv: Sequence[str], container: bool = False,
                 env: Mapping[str, str] | None = None, warnings: Iterable[str] = (),
                 notes: Iterable[str] = ()) -> None:
        self.argv = tuple(argv)
        self.container = container
        self.env = None if env is None else dict(env)
        self.warnings = list(warnings)
        self.notes = list(notes)

    def shell(self, environ: Mapping[str, str]) -> bytes:
        """The plan as POSIX shell commands, for ``eval`` by a shell whose environment is
        ``environ``: every value and argument one single-quoted word, every command a special
        built-in (``unset``, ``export``, ``exec``, ``set``: no function of the job's can stand
        in for them). A variable whose name the shell cannot take (``A.B``, an exported
        function's ``BASH_FUNC_name%%``) is removed by ``/usr/bin/env -u`` when the plan's
        environment leaves it out, else passed on unchanged."""
        lines = []
        argv = list(self.argv)
        if self.env is not None:
            lines += [b"unset " + name.encode() for name in environ
                      if name not in self.env and _is_name(name)]
            lines += [b"export " + name.encode() + b"=" + _quote(value)
                      for name, value in self.env.items()
                      if environ.get(name) != value and _is_name(name)]
            # what the shell cannot unset (BASH_FUNC_name%%: an exported function)
            odd = [name for name in environ if name not in self.env and not _is_name(name)]
            if odd:
                argv = [ENV_BINARY, *(word for name in odd for word in ("-u", name)), *argv]
        words = b" ".join(_quote(arg) for arg in argv)
        lines.append((b"exec " if self.container else b"set -- ") + words)
        return b"\n".join(lines) + b"\n"


def _quote(text: str) -> bytes:
    """``text`` as one single-quoted shell word (bytes: an argument need not be UTF-8)."""
    return b"'" + as_bytes(text).replace(b"'", b"'\\''") + b"'"


def as_bytes(text: str) -> bytes:
    """``text`` as the bytes it came from (argv and environment are bytes on POSIX). PyPy 3.9
    in the C locale decodes them as UTF-8 but has an ASCII filesystem encoding: UTF-8 then."""
    try:
        return os.fsencode(text)
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")


def _is_name(name: str) -> bool:
    """A name the shell can export and unset."""
    return bool(name) and name.isascii() and not name[0].isdigit() and \
        name.replace("_", "a").isalnum()
