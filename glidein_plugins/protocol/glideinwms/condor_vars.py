"""condor_vars.lst: the list that makes ``condor_startup.sh`` turn glidein_config values into
startd config and machine ClassAd attributes (seven whitespace-separated columns).

``condor_startup.sh`` reads each line with ``read line`` and splits it unquoted (``set_var
$line``), and a default is assigned with ``eval var_val=$default``: so every column is one plain
word, and a default holds no shell-special character at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from glidein_plugins.errors import ConfigError
from glidein_plugins.node import atomic
from glidein_plugins.protocol.glideinwms.glidein_config import Lock
from glidein_plugins.protocol.htcondor import classad

_PLAIN_WORD = re.compile(r"[A-Za-z0-9_.,:/+=@%-]+\Z")  # nothing the shell expands or splits
_JOB_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_FIRST_WORD = re.compile(r"[ \t]*([^ \t]*)")  # as bash's ``read`` splits (IFS: blank and tab)
_ENCODING = ("utf-8", "surrogateescape")  # lines of others are rewritten byte for byte


@dataclass(frozen=True)
class VarLine:
    """``Name Type Default CondorName Required ExportToStartd JobEnv``."""

    name: str
    type: str = "S"
    default: str = "-"  # '-' = none
    condor_name: str = "+"  # '+' = same as name
    required: bool = False
    export: bool = True
    job_env: str = "+"  # '-' not exported to jobs, '+' as name, '@' as condor name, or a name

    def __post_init__(self) -> None:
        classad.check_name(self.name)
        if self.type not in ("S", "I", "C"):
            raise ValueError(f"{self.name}: type must be S, I or C, not {self.type!r}")
        if self.default != "-":
            if not _PLAIN_WORD.match(self.default):
                raise ValueError(f"{self.name}: default {self.default!r} must be one plain word "
                                 "(letters, digits, _.,:/+=@%-)")
            classad.check_value(self.default, self.type)
        if self.condor_name != "+":
            classad.check_name(self.condor_name)
        if self.job_env not in ("-", "+", "@") and not _JOB_ENV_NAME.match(self.job_env):
            raise ValueError(f"{self.name}: job_env must be -, +, @ or a variable name, "
                             f"not {self.job_env!r}")

    def __str__(self) -> str:
        yes_no = {True: "Y", False: "N"}
        return " ".join(
            (self.name, self.type, self.default, self.condor_name, yes_no[self.required],
             yes_no[self.export], self.job_env)
        )


def read_names(path: Path) -> list[str]:
    """The variable names listed in ``path``, in order (comments and blank lines skipped)."""
    return [name for name in map(_name, _read(path).split("\n")) if name and name[0] != "#"]


def _name(line: str) -> str:
    """The first word of a line, as ``read line; set_var $line`` sees it ('' for a blank one)."""
    match = _FIRST_WORD.match(line)
    return match.group(1) if match else ""


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode(*_ENCODING)
    except FileNotFoundError:
        raise ConfigError(str(path), "condor_vars file (CONDOR_VARS_FILE) does not exist") from None
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read condor_vars file: {exc.strerror}") from None


def update(path: Path, lines: Iterable[VarLine], lock: Lock | None = None) -> None:
    """Add ``lines``, replacing any existing line for the same name, in one atomic rewrite.

    Comments, blank lines and the lines of other names are kept byte for byte.
    """
    lines = list(lines)
    if not lines:
        return
    with lock or Lock(path):
        update_locked(path, lines)


def update_locked(path: Path, lines: Iterable[VarLine]) -> str:
    """``update`` for a caller that holds ``path``'s lock; returns the text it replaced, for
    the caller to put back under the same lock."""
    text = _read(path)
    new = {line.name: str(line) for line in lines}
    if not new:
        return text
    kept = [line for line in text.split("\n") if _name(line) not in new]
    while kept and not kept[-1]:
        kept.pop()
    if kept and kept[-1].endswith("\\"):  # `read line` would join our first line to it
        kept.append("")
    atomic.write_text(path, "\n".join([*kept, *new.values()]) + "\n")
    return text
