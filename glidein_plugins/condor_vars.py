"""condor_vars.lst: the list that makes ``condor_startup.sh`` turn glidein_config values into
startd config and machine ClassAd attributes (seven whitespace-separated columns)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List

from glidein_plugins import classad
from glidein_plugins.errors import ConfigError
from glidein_plugins import atomic
from glidein_plugins.glidein_config import Lock


@dataclass(frozen=True)
class VarLine:
    """``Name Type Default CondorName Required ExportToStartd JobEnv``."""

    name: str
    type: str = "S"
    default: str = "-"  # '-' = none
    condor_name: str = "+"  # '+' = same as name
    required: bool = False
    export: bool = True
    job_env: str = "+"  # '-' not exported to jobs, '+' as name, '@' as condor name

    def __post_init__(self) -> None:
        classad.check_name(self.name)
        if self.type not in ("S", "I", "C"):
            raise ValueError(f"{self.name}: type must be S, I or C, not {self.type!r}")
        for column in (self.default, self.condor_name, self.job_env):
            if not column or any(char.isspace() for char in column):
                raise ValueError(f"{self.name}: condor_vars columns cannot be empty or hold spaces")

    def __str__(self) -> str:
        yes_no = {True: "Y", False: "N"}
        return " ".join(
            (self.name, self.type, self.default, self.condor_name, yes_no[self.required],
             yes_no[self.export], self.job_env)
        )


def read_names(path: Path) -> List[str]:
    """The variable names listed in ``path``, in order (comments and blank lines skipped)."""
    return [fields[0] for fields in _rows(path.read_text(errors="replace")) if fields]


def _rows(text: str) -> List[List[str]]:
    return [line.split() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def update(path: Path, lines: Iterable[VarLine]) -> None:
    """Add ``lines``, replacing any existing line for the same name, in one atomic rewrite."""
    new = {line.name: str(line) for line in lines}
    if not new:
        return
    with Lock(path):
        try:
            old = path.read_text(errors="surrogateescape")
        except FileNotFoundError:
            raise ConfigError(str(path), "condor_vars file (CONDOR_VARS_FILE) does not exist") from None
        except OSError as exc:
            raise ConfigError(str(path), f"cannot read condor_vars file: {exc.strerror}") from None
        kept = [line for line in old.splitlines() if (line.split() or [""])[0] not in new]
        atomic.write_text(path, "\n".join([*kept, *new.values()]) + "\n")
