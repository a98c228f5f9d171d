"""The operator commands, run as real processes on this bare machine (no container runtime, no
GPU plugin): ``glidein-plugins run`` (a dry run, as text or JSON), ``plugins``, ``--version``."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import run_cli

from glidein_plugins import __version__

SITE = Path(__file__).parent / "data" / "factory" / "site.yaml"
PUBLISHED = ["HAS_SINGULARITY", "HAS_SINGULARITY_REASON", "GWMS_SINGULARITY_STATUS"]


def cli(tmp_path: Path, *args: str, code: int = 0):
    """Run the command in an empty directory (with its own TMPDIR) and check it leaves both
    empty: a dry run works in a temporary work dir that it removes."""
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    proc = run_cli(list(args), cwd, env={"TMPDIR": str(tmp)})
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert list(cwd.iterdir()) == [] and list(tmp.iterdir()) == []
    return proc


def table(text: str, title: str) -> list[list[str]]:
    """The rows (cells split on runs of 2+ spaces) of the indented table under ``title``."""
    lines = text.splitlines()
    start = lines.index(title) + 2  # skip the header row
    rows = []
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


def test_run_shows_attributes_with_their_plugin_and_why_nothing_was_found(
        tmp_path: Path) -> None:
    out = cli(tmp_path, "run").stdout
    assert "Result:  OK (exit 0)" in out
    assert re.search(r"^Runtime: none \(no container runtime found", out, re.M)
    attributes = table(out, "Attributes")
    assert [row[:3] for row in attributes] == [
        ["HAS_SINGULARITY", "C", "singularity"],
        ["HAS_SINGULARITY_REASON", "S", "singularity"],
        ["GWMS_SINGULARITY_STATUS", "S", "singularity"]]
    assert (attributes[0][3], attributes[2][3]) == ("False", '"PREFERRED"')
    trace = {(row[0], row[3]) for row in table(out, "Decision trace")}
    assert ("runtime", "no container runtime found: no candidate binary was proposed") in trace
    assert any(phase == "gpu" and "GPUs not looked for" in why for phase, why in trace)


def run_json(tmp_path: Path, *args: str, code: int = 0) -> dict:
    return json.loads(cli(tmp_path, "run", "--json", *args, code=code).stdout)


def test_run_json_says_the_same(tmp_path: Path) -> None:
    report = run_json(tmp_path)
    assert (report["entry"], report["exit_code"], report["failure"]) == ("default", 0, None)
    assert report["mode"]["outcome"] == "PREFERRED"
    assert report["runtime"] is None and report["rejected_runtimes"] == []
    assert report["runtime_reason"] == (
        "no container runtime found: no candidate binary was proposed")
    assert report["gpus"] == []
    assert [(a["name"], a["plugin"]) for a in report["attributes"]] == [
        (name, "singularity") for name in PUBLISHED]
    assert report["metrics"] == {"use_singularity": "False", "singularity_mode": "PREFERRED",
                                 "attributes": "3"}
    phases = [event["phase"] for event in report["trace"]]
    assert {"mode", "runtime", "gpu"} <= set(phases)


@pytest.mark.parametrize(("sets", "outcome", "code"), [
    (["GLIDEIN_Singularity_Use=NEVER"], "NEVER", 0),
    (["GLIDEIN_Singularity_Use=never", "GLIDEIN_SINGULARITY_REQUIRE=REQUIRED"], "FAIL", 1),
    (["GLIDEIN_Singularity_Use=REQUIRED"], "REQUIRED", 1),
    (["GLIDEIN_Singularity_Use=DISABLE_GWMS", "UNRELATED=a=b c"], "DISABLE", 0),
])
def test_run_set_changes_glidein_config_values(tmp_path: Path, sets: list[str], outcome: str,
                                               code: int) -> None:
    report = run_json(tmp_path, *(arg for item in sets for arg in ("--set", item)), code=code)
    assert report["mode"]["outcome"] == outcome
    failure = {"FAIL": "VO_Config", "REQUIRED": "WN_Resource"}.get(outcome)
    assert (report["failure"] or {}).get("type") == failure


@pytest.mark.parametrize(("entry", "outcome", "attributes"), [
    ("CE_ONE", "REQUIRED", []),  # its section: GLIDEIN_SINGULARITY_REQUIRE=REQUIRED (no runtime)
    ("CE_TWO", "PREFERRED", []),  # its section disables the singularity plugin
    ("UNLISTED", "PREFERRED", PUBLISHED),  # the defaults
])
def test_run_entry_picks_a_section_of_the_config(tmp_path: Path, entry: str, outcome: str,
                                                 attributes: list[str]) -> None:
    report = run_json(tmp_path, "--config", str(SITE), "--entry", entry,
                      code=1 if outcome == "REQUIRED" else 0)
    assert (report["entry"], report["mode"]["outcome"]) == (entry, outcome)
    assert report["mode"]["factory"] == ("REQUIRED" if entry == "CE_ONE" else "PREFERRED")
    assert [a["name"] for a in report["attributes"]] == attributes


def test_run_with_a_broken_config_fails_with_where(tmp_path: Path) -> None:
    bad = Path(__file__).parent / "data" / "factory" / "syntax" / "tab_indent.yaml"
    out = cli(tmp_path, "run", "--config", str(bad), code=1).stdout
    assert f"Result:  FAILED (exit 1): Config: {bad}:2: YAML syntax error" in out


@pytest.mark.parametrize("item", ["NOEQUALS", "=value", "BAD KEY=1", "KEY=two\nlines",
                                  "9KEY=1"])
def test_run_rejects_a_malformed_set(tmp_path: Path, item: str) -> None:
    proc = cli(tmp_path, "run", "--set", item, code=2)
    assert proc.stdout == ""
    assert proc.stderr.startswith(f"glidein-plugins: error: --set expects KEY=VALUE (a "
                                  f"glidein_config key and a one-line value), got {item!r}")


def test_run_keep_leaves_the_work_dir(tmp_path: Path) -> None:
    proc = run_cli(["run", "--keep"], tmp_path)
    assert proc.returncode == 0
    kept = Path(proc.stderr.strip().removeprefix("work dir kept: "))
    try:
        assert {"glidein_config", "condor_vars.lst", "otrb_output.xml"} <= {
            path.name for path in kept.iterdir()}
        assert "HAS_SINGULARITY C - + N Y +" in (kept / "condor_vars.lst").read_text()
    finally:
        shutil.rmtree(kept)


def test_plugins_lists_the_builtins_with_their_hooks(tmp_path: Path) -> None:
    out = cli(tmp_path, "plugins").stdout
    rows = {row[0]: row for row in table(out, "Registered plugins")}
    assert rows["mode"] == ["mode", "builtin", "glidein_plugins", "glidein_mode_negotiate"]
    assert rows["singularity"] == ["singularity", "builtin", "glidein_plugins",
                                   "glidein_attributes_contribute"]


def test_plugins_shows_what_an_entry_blocks(tmp_path: Path) -> None:
    out = cli(tmp_path, "plugins", "--config", str(SITE), "--entry", "CE_TWO").stdout
    assert list(row[0] for row in table(out, "Registered plugins")) == ["mode"]
    assert "Blocked: singularity" in out.splitlines()


def test_plugins_with_a_broken_config_is_a_clear_error(tmp_path: Path) -> None:
    proc = cli(tmp_path, "plugins", "--config", str(tmp_path / "missing.yaml"), code=1)
    assert proc.stderr == (f"glidein-plugins: error: {tmp_path / 'missing.yaml'}: cannot read: "
                           "No such file or directory\n")


def test_version(tmp_path: Path) -> None:
    assert cli(tmp_path, "--version").stdout == f"glidein-plugins {__version__}\n"
