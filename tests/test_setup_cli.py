"""``glidein-plugins setup glidein_config ID`` as a GlideinWMS custom script: how it is called,
what it leaves in the work dir, and how it treats what other scripts left there. Every run is on
a bare node (``bare_node_env``: no runtime or image can be found, whatever the machine, and no
GPU is looked for: what is published here is the Singularity protocol's alone)."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest
from conftest import GlideinResult, bare_node_env, glidein_result, make_work_dir, run_cli

DATA = Path(__file__).parent / "data" / "factory"
NEVER = {"GLIDEIN_Singularity_Use": "NEVER"}  # a mode that advertises attributes
PUBLISHED = ("HAS_SINGULARITY", "HAS_SINGULARITY_REASON", "GWMS_SINGULARITY_STATUS")
# .glidein_plugins: setup's decision for the wrapper, in every mode (issue 13)
WORK_FILES = [".glidein_plugins", "condor_vars.lst", "glidein_config", "glidein_config.history",
              "otrb_output.xml"]


def setup(work_dir: Path, *args: str, script_id: str = "entry",
          env: dict[str, str] | None = None) -> GlideinResult:
    environ = {**bare_node_env(work_dir.parent / "bare-node"), **(env or {})}
    return glidein_result(
        run_cli(["setup", "glidein_config", script_id, *args], work_dir, environ), work_dir)


def lines_of(path: Path, name: str) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.split(" ")[0] == name]


@pytest.mark.parametrize("script_id", ["main", "entry", "client", "client_group"])
def test_runs_as_glidein_startup_runs_a_script(tmp_path: Path, script_id: str) -> None:
    work = make_work_dir(tmp_path / "work", NEVER)
    result = setup(work, script_id=script_id)
    assert (result.exit_code, result.script_id, result.stderr) == (0, script_id, "")
    assert all(line.startswith("glidein_plugins: ") for line in result.stdout.splitlines())
    assert result.stdout.splitlines()[-1] == "glidein_plugins: entry TEST_ENTRY: OK (exit 0)"
    # the XML is in the directory the script started in; no lock or temporary file is left
    assert sorted(path.name for path in work.iterdir()) == WORK_FILES


def test_an_absolute_glidein_config_path_works_too(tmp_path: Path) -> None:
    work = make_work_dir(tmp_path / "work", NEVER)
    proc = run_cli(["setup", str(work / "glidein_config"), "entry"], work,
                   bare_node_env(tmp_path / "bare-node"))
    result = glidein_result(proc, work)
    assert (result.exit_code, result.config["GWMS_SINGULARITY_STATUS"]) == (0, "NEVER")


def test_a_relative_condor_vars_file_is_found_from_the_work_dir(tmp_path: Path) -> None:
    work = make_work_dir(tmp_path / "work", {**NEVER, "CONDOR_VARS_FILE": "condor_vars.lst"})
    result = setup(work)
    assert result.exit_code == 0
    assert result.condor_vars["HAS_SINGULARITY"] == "HAS_SINGULARITY C - + N Y +"


def test_running_twice_changes_nothing_more(tmp_path: Path) -> None:
    work = make_work_dir(tmp_path / "work", NEVER)
    assert setup(work).exit_code == 0
    first = {name: (work / name).read_bytes() for name in WORK_FILES[1:4]}
    assert setup(work).exit_code == 0
    assert {name: (work / name).read_bytes() for name in WORK_FILES[1:4]} == first
    for name in PUBLISHED:
        assert len(lines_of(work / "glidein_config", name)) == 1
        assert len(lines_of(work / "condor_vars.lst", name)) == 1
    # the history has one line per change ('GLP<pid> NAME value'), all from the first run
    history = (work / "glidein_config.history").read_text().splitlines()
    assert sorted(line.split(" ")[1] for line in history) == sorted(PUBLISHED)


def test_stale_values_and_condor_vars_lines_are_replaced(tmp_path: Path) -> None:
    """A value another script published earlier is replaced (old line dropped, as gconfig_add
    does), and so is its condor_vars line; every other line stays, in order."""
    work = make_work_dir(tmp_path / "work", {"HAS_SINGULARITY": "True", **NEVER,
                                             "OTHER_KEY": "kept"})
    with open(work / "condor_vars.lst", "a") as condor_vars:
        condor_vars.write("HAS_SINGULARITY S - + N Y -\nOTHER_KEY S - + N Y -\n")
    result = setup(work)
    assert result.exit_code == 0
    assert lines_of(work / "glidein_config", "HAS_SINGULARITY") == ["HAS_SINGULARITY False"]
    assert lines_of(work / "condor_vars.lst", "HAS_SINGULARITY") == [
        "HAS_SINGULARITY C - + N Y +"]
    assert result.config["OTHER_KEY"] == "kept"
    assert [line.split()[0] for line in (work / "condor_vars.lst").read_text().splitlines()] == [
        "#", "GLIDEIN_Site", "OTHER_KEY", *PUBLISHED]


def test_file_modes_are_kept(tmp_path: Path) -> None:
    work = make_work_dir(tmp_path / "work", NEVER)
    for name in ("glidein_config", "condor_vars.lst"):
        (work / name).chmod(0o640)
    assert setup(work).exit_code == 0
    for name in ("glidein_config", "condor_vars.lst"):
        assert stat.S_IMODE((work / name).stat().st_mode) == 0o640


def test_a_previous_result_xml_is_replaced(tmp_path: Path) -> None:
    work = make_work_dir(tmp_path / "work", NEVER)
    (work / "otrb_output.xml").write_text("left by the previous script\n")
    result = setup(work)
    assert (result.status, result.metrics["singularity_mode"]) == ("OK", "NEVER")


@pytest.mark.parametrize("how", ["--config-dir", "environment"])
def test_the_entry_section_is_picked_by_glidein_entry_name(tmp_path: Path, how: str) -> None:
    configs = tmp_path / "configs"
    configs.mkdir()
    for name in ("site.yaml", "override.yaml"):
        shutil.copy(DATA / name, configs / name)
    (configs / "notes.txt").write_text("not YAML: ignored\n")
    work = make_work_dir(tmp_path / "work", {"GLIDEIN_Singularity_Use": "OPTIONAL",
                                             "GLIDEIN_Entry_Name": "CE_ONE"})
    del_line(work / "glidein_config", "GLIDEIN_SINGULARITY_REQUIRE")
    args, env = ((["--config-dir", str(configs)], None) if how == "--config-dir" else
                 ([], {"GLIDEIN_PLUGINS_CONFIG_DIR": str(configs)}))
    result = setup(work, *args, env=env)
    # CE_ONE's section sets GLIDEIN_SINGULARITY_REQUIRE=REQUIRED: OPTIONAL x REQUIRED = REQUIRED,
    # and this bare node has no runtime
    assert (result.exit_code, result.failure) == (1, "WN_Resource")
    assert result.metrics["singularity_mode"] == "REQUIRED"
    assert "Singularity is REQUIRED but no working container runtime among" in result.detail


def del_line(path: Path, key: str) -> None:
    path.write_text("".join(line for line in path.read_text().splitlines(keepends=True)
                            if line.split(" ")[0] != key))


@pytest.mark.parametrize("how", ["environment", "entry config"])
def test_a_disabled_singularity_plugin_publishes_nothing(tmp_path: Path, how: str) -> None:
    work = make_work_dir(tmp_path / "work", {**NEVER, "GLIDEIN_Entry_Name": "CE_TWO"})
    before = (work / "glidein_config").read_bytes()
    result = (setup(work, env={"GLIDEIN_PLUGINS_DISABLE": "singularity,gpus"})
              if how == "environment" else setup(work, "--config", str(DATA / "site.yaml")))
    assert (result.exit_code, result.metrics["attributes"]) == (0, "0")
    assert result.metrics["singularity_mode"] == "NEVER"
    assert (work / "glidein_config").read_bytes() == before


def test_trace_goes_to_stderr_when_asked(tmp_path: Path) -> None:
    work = make_work_dir(tmp_path / "work", NEVER)
    result = setup(work, env={"GLIDEIN_PLUGINS_TRACE": "1"})
    assert result.exit_code == 0
    assert "[trace] glidein_mode_negotiate mode" in result.stderr
