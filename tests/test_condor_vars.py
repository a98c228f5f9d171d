"""condor_vars.lst: seven plain columns that ``condor_startup.sh`` splits with bash, a line per
name replaced in one atomic rewrite, everything else kept byte for byte."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from _proto_support import CHILD_TIMEOUT

from glidein_plugins.errors import ConfigError
from glidein_plugins.protocol.glideinwms import condor_vars
from glidein_plugins.protocol.glideinwms.condor_vars import VarLine

HEADER = b"# VarName Type Default CondorName Required Export UserJobEnvName\n"


@pytest.fixture
def lst(tmp_path: Path) -> Path:
    path = tmp_path / "condor_vars.lst"
    path.write_bytes(HEADER + b"GLIDEIN_Site S - + N Y @\n")
    return path


@pytest.mark.parametrize(("line", "text"), [
    (VarLine("HAS_X"), "HAS_X S - + N Y +"),
    (VarLine("HAS_X", "C", "False", "+", True, False, "-"), "HAS_X C False + Y N -"),
    (VarLine("N_X", "I", "-12", "GLIDEIN_N_X", False, True, "@"), "N_X I -12 GLIDEIN_N_X N Y @"),
    (VarLine("URL_X", "S", "a/b:c.d,e=f@g%h+i-j_k", job_env="JOB_URL"),
     "URL_X S a/b:c.d,e=f@g%h+i-j_k + N Y JOB_URL"),
])
def test_line_has_seven_columns(line: VarLine, text: str) -> None:
    assert str(line) == text


@pytest.mark.parametrize("kwargs", [
    {"name": "1BAD"},
    {"name": "BAD-NAME"},
    {"name": "HasSingularity"},  # HTCondor's own
    {"name": "HAS_X", "type": "X"},
    {"name": "HAS_X", "type": "s"},
    {"name": "HAS_X", "default": ""},
    {"name": "HAS_X", "default": "two words"},
    {"name": "HAS_X", "default": "$(HOME)"},  # eval'd by condor_startup: no shell syntax
    {"name": "HAS_X", "default": "`id`"},
    {"name": "HAS_X", "default": "*"},
    {"name": "HAS_X", "default": "~"},
    {"name": "HAS_X", "default": "a;b"},
    {"name": "HAS_X", "type": "I", "default": "1.5"},
    {"name": "HAS_X", "type": "C", "default": "(unbalanced"},
    {"name": "HAS_X", "condor_name": "GPUs"},
    {"name": "HAS_X", "condor_name": "a b"},
    {"name": "HAS_X", "condor_name": ""},
    {"name": "HAS_X", "job_env": ""},
    {"name": "HAS_X", "job_env": "a=b"},
    {"name": "HAS_X", "job_env": "*"},
])
def test_invalid_columns_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        VarLine(**kwargs)


def test_update_replaces_the_line_for_a_name_and_keeps_the_rest_byte_for_byte(lst: Path) -> None:
    lst.write_bytes(HEADER + b"# HAS_X in a comment stays\nHAS_X S - + N Y -\n"
                    b"HAS_X_LONG S - + N Y -\nOTHER S caf\xe9 + N Y -\n\n  HAS_X I - + N N -\n"
                    b"HAS_Y C - + N Y -\r\n")
    condor_vars.update(lst, [VarLine("HAS_X", "C"), VarLine("NEW_Z", "I", "0")])
    assert lst.read_bytes() == (
        HEADER + b"# HAS_X in a comment stays\nHAS_X_LONG S - + N Y -\nOTHER S caf\xe9 + N Y -\n\n"
        b"HAS_Y C - + N Y -\r\nHAS_X C - + N Y +\nNEW_Z I 0 + N Y +\n")
    assert condor_vars.read_names(lst) == ["HAS_X_LONG", "OTHER", "HAS_Y", "HAS_X", "NEW_Z"]
    assert sorted(p.name for p in lst.parent.iterdir()) == ["condor_vars.lst"]  # no lock left


def test_update_twice_keeps_one_line(lst: Path) -> None:
    condor_vars.update(lst, [VarLine("HAS_X", "S")])
    condor_vars.update(lst, [VarLine("HAS_X", "C")])
    assert lst.read_bytes() == HEADER + b"GLIDEIN_Site S - + N Y @\nHAS_X C - + N Y +\n"


def test_update_with_no_line_does_not_touch_the_file(lst: Path) -> None:
    inode = lst.stat().st_ino
    condor_vars.update(lst, [])
    assert lst.stat().st_ino == inode


@pytest.mark.parametrize(("kind", "why"), [
    ("missing", "condor_vars file (CONDOR_VARS_FILE) does not exist"),
    ("directory", "cannot read condor_vars file: Is a directory"),
])
@pytest.mark.parametrize("action", ["update", "read_names"])
def test_unreadable_file_is_a_config_error(tmp_path: Path, kind: str, why: str,
                                           action: str) -> None:
    path = tmp_path / "condor_vars.lst"
    if kind == "directory":
        path.mkdir()
    with pytest.raises(ConfigError) as info:
        if action == "update":
            condor_vars.update(path, [VarLine("HAS_X")])
        else:
            condor_vars.read_names(path)
    assert str(info.value) == f"{path}: {why}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if kind == "missing" else [path.name])


def test_bash_reads_every_line_as_condor_startup_does(lst: Path) -> None:
    """``while read line; do set_var $line; done``: seven words, the default eval'd unchanged."""
    lines = [VarLine("A_S", "S", "a/b:c.d,e=f@g%h+i-j_k"), VarLine("B_C", "C", "True"),
             VarLine("C_I", "I", "-3", "C_I_CONDOR", True, False, "JOB_C")]
    condor_vars.update(lst, lines)
    script = ('grep -v "^#" "$1" | while read line; do set -- $line; '
              'eval var_def=$3; printf "%s|%s|%s\\n" "$#" "$1" "$var_def"; done')
    result = subprocess.run(["bash", "-c", script, "bash", str(lst)], capture_output=True,
                            text=True, timeout=CHILD_TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["7|GLIDEIN_Site|-"] + [
        f"7|{line.name}|{line.default}" for line in lines]
