"""A glidein's files as GlideinWMS and HTCondor leave them: the work dir with its
glidein_config and condor_vars.lst, and the job and machine ads of a job."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Union

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def make_work_dir(path: Path, values: Mapping[str, str] | None = None) -> Path:
    """A glidein work dir as glidein_startup.sh leaves it before an entry script runs:
    ``glidein_config`` (the usual keys, entry ``TEST_ENTRY``, then ``values``, which add or
    replace keys) and a ``condor_vars.lst`` naming ``GLIDEIN_Site``. Returns ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "condor_vars.lst").write_text(
        "# VarName Type Default CondorName Required Export UserJobEnvName\n"
        "GLIDEIN_Site S - + N Y @\n")
    base = {
        "GLIDEIN_Entry_Name": "TEST_ENTRY",
        "GLIDEIN_Name": "gfactory_instance",
        "GLIDEIN_Factory": "TestFactory",
        "GLIDECLIENT_Name": "frontend.main",
        "GLIDEIN_WORK_DIR": str(path / "main"),
        "GLIDEIN_ENTRY_WORK_DIR": str(path / "entry_TEST_ENTRY"),
        "TMP_DIR": str(path / "tmp"),
        "CONDOR_VARS_FILE": str(path / "condor_vars.lst"),
        "ERROR_GEN_PATH": str(path / "main" / "error_gen.sh"),
    }
    base.update(values or {})
    (path / "glidein_config").write_text("".join(f"{k} {v}\n" for k, v in base.items()))
    return path


def gconfig_values(path: Path) -> dict[str, str]:
    """glidein_config as ``gconfig_get`` reads it: value after the first space, last line wins."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text(errors="surrogateescape").splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            values[key] = value
    return values


# ---------------------------------------------------------------------------------------------
# Job and machine ads (``_CONDOR_JOB_AD``, ``_CONDOR_MACHINE_AD``)
# ---------------------------------------------------------------------------------------------


class Expr(str):
    """ClassAd expression text, written as is (``Expr("RequestCpus * 2")``)."""

    __slots__ = ()


AdValue = Union[str, bool, int, float, Expr]


def ad_string(value: str) -> str:
    """A ClassAd string literal as the starter writes one in an ad file: old ClassAd syntax,
    where only ``"`` is escaped (``\\"``) and every other backslash stands for itself.

    (``glidein_plugins.protocol.htcondor.classad.quote`` gives the *new*-syntax literal, which
    doubles
    backslashes: right for condor_vars C-type values, wrong in an ad file.)"""
    if _CONTROL.search(value):
        raise ValueError(f"{value!r}: an ad file's string cannot hold control characters")
    return '"' + value.replace('"', '\\"') + '"'


def ad_literal(value: AdValue) -> str:
    """The expression text of a Python value: ``Expr`` as is, ``bool`` as ``true``/``false``,
    numbers as written, any other ``str`` as a string literal (``ad_string``)."""
    if isinstance(value, Expr):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return ad_string(value)
    raise TypeError(f"no ClassAd literal for {type(value).__name__} {value!r}")


def write_ad(path: Path, attributes: Mapping[str, str]) -> Path:
    """An ad file as the starter writes ``_CONDOR_JOB_AD``: ``Name = expression`` lines
    (values are expression text: quote strings yourself with ``ad_string``, or use
    ``write_job_ad``). Returns ``path``."""
    for name in attributes:
        if not _NAME.match(name):
            raise ValueError(f"{name!r} is not a ClassAd attribute name")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{name} = {expr}\n" for name, expr in attributes.items()))
    return path


def write_job_ad(path: Path, attributes: Mapping[str, AdValue]) -> Path:
    """An ad file (HTCondor's long format) from Python values (see ``ad_literal``):
    ``write_job_ad(p, {"RequestGPUs": 1, "SingularityImage": "/cvmfs/x/el9"})``."""
    return write_ad(path, {name: ad_literal(value) for name, value in attributes.items()})
