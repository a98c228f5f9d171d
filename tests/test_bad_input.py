"""Bad input to ``glidein-plugins setup``: every failure is a Config failure (VO_Config for a
Frontend value) with a well-formed result XML (status ERROR, exit 1) that says what and where,
never a traceback, and nothing half-written: glidein_config and condor_vars.lst stay
byte-identical. Runs are on a bare node (``bare_node_env``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from conftest import GlideinResult, bare_node_env, glidein_result, run_cli

DATA = Path(__file__).parent / "data" / "factory"
PUBLISHING = {"GLIDEIN_Singularity_Use": "NEVER"}  # a mode that advertises attributes


def setup(work_dir: Path, *args: str, config: str = "glidein_config",
          env: dict[str, str] | None = None) -> GlideinResult:
    environ = {**bare_node_env(work_dir.parent / "bare-node"), **(env or {})}
    proc = run_cli(["setup", config, "entry", *args], work_dir, environ)
    return glidein_result(proc, work_dir)


def snapshot(work_dir: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(work_dir.iterdir())
            if path.is_file() and path.name != "otrb_output.xml"}


def assert_config_failure(result: GlideinResult, *fragments: str) -> None:
    assert (result.exit_code, result.status, result.failure) == (1, "ERROR", "Config"), \
        result.stdout
    for fragment in fragments:
        assert fragment in result.detail, (fragment, result.detail)
        assert fragment in result.stdout  # the glidein log says it too


def set_lines(work_dir: Path, text: str) -> None:
    """Replace glidein_config's content (keeps the rest of the work dir)."""
    (work_dir / "glidein_config").write_text(text)


# -- glidein_config itself ---------------------------------------------------------------------


def test_missing_glidein_config(tmp_path: Path) -> None:
    result = setup(tmp_path)
    assert_config_failure(result, f"{tmp_path / 'glidein_config'}: glidein_config does not exist")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["otrb_output.xml"]


def test_glidein_config_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "glidein_config").mkdir()
    assert_config_failure(setup(tmp_path), "glidein_config is a directory")


def test_glidein_config_symlink_loop(tmp_path: Path) -> None:
    (tmp_path / "glidein_config").symlink_to("glidein_config")
    assert_config_failure(setup(tmp_path), "cannot read glidein_config: Too many levels")


def test_unreadable_glidein_config(work_dir: Path) -> None:
    path = work_dir / "glidein_config"
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as root: a mode-000 file is still readable")
        assert_config_failure(setup(work_dir), "cannot read glidein_config")
    finally:
        path.chmod(0o644)


def test_malformed_lines_are_reported_with_their_line_and_skipped(work_dir: Path) -> None:
    path = work_dir / "glidein_config"
    with open(path, "a") as config:
        config.write("NOSPACE\n9STARTS_WITH_A_DIGIT value\nKEY=VALUE x\n"
                     "GLIDEIN_Singularity_Use NEVER\n")
    before = path.read_bytes()
    first = len(before.splitlines()) - 3  # the number of the line 'NOSPACE'
    result = setup(work_dir)
    assert result.exit_code == 0 and result.config["HAS_SINGULARITY"] == "False"
    for offset, text in enumerate(("NOSPACE", "9STARTS_WITH_A_DIGIT value", "KEY=VALUE x")):
        assert f"glidein_config:{first + offset}: skipped malformed line" in result.stdout
        assert repr(text) in result.stdout
    assert path.read_bytes().startswith(before), "lines we do not own are kept as they were"


def test_bytes_that_are_not_utf8_never_crash_nor_get_altered(work_dir: Path) -> None:
    path = work_dir / "glidein_config"
    with open(path, "ab") as config:
        config.write(b"GLIDEIN_Entry_Name caf\xe9\nSOME_SITE_KEY \xff\xfe raw\n"
                     b"GLIDEIN_Singularity_Use NEVER\n")
    before = path.read_bytes()
    # a strict stdout: a log line holding those bytes must not raise
    result = setup(work_dir, env={"PYTHONIOENCODING": "utf-8:strict"})
    assert result.exit_code == 0, result.stderr
    assert path.read_bytes().startswith(before)


# -- publishing: CONDOR_VARS_FILE ---------------------------------------------------------------


PUBLISH = "cannot publish attributes: "


@pytest.mark.parametrize(("vars_line", "message"), [
    # checked first, before any probe: GlideinWMS always writes it
    (None, "{work}/glidein_config: glidein_config lacks CONDOR_VARS_FILE, which "
           "glidein_startup.sh always writes"),
    ("CONDOR_VARS_FILE ", PUBLISH + "glidein_config:{line}: CONDOR_VARS_FILE is not set"),
    ("CONDOR_VARS_FILE {work}/missing.lst", PUBLISH + "glidein_config:{line}: CONDOR_VARS_FILE "
                                            "{work}/missing.lst: No such file or directory"),
    ("CONDOR_VARS_FILE {work}",
     PUBLISH + "glidein_config:{line}: CONDOR_VARS_FILE {work}: Is a directory"),
], ids=["unset", "empty", "missing-file", "directory"])
def test_condor_vars_problems_leave_every_file_as_it_was(work_dir: Path, vars_line: str | None,
                                                         message: str) -> None:
    lines = [line for line in (work_dir / "glidein_config").read_text().splitlines()
             if not line.startswith("CONDOR_VARS_FILE")]
    lines += ["GLIDEIN_Singularity_Use NEVER"]
    if vars_line is not None:
        lines.append(vars_line.format(work=work_dir))
    set_lines(work_dir, "\n".join(lines) + "\n")
    before = snapshot(work_dir)
    result = setup(work_dir)
    assert_config_failure(result, message.format(line=len(lines), work=work_dir))
    assert result.metrics["attributes"] == "0"
    assert "advertise HAS_SINGULARITY" not in result.stdout
    assert snapshot(work_dir) == before, "nothing may be half-written"


# -- the factory config (YAML) ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["unclosed_flow", "tab_indent", "two_documents"])
def test_broken_yaml_config_fails_with_file_and_line(work_dir: Path, name: str) -> None:
    path = DATA / "syntax" / f"{name}.yaml"
    with pytest.raises(yaml.YAMLError) as caught:
        yaml.safe_load(path.read_text())
    before = snapshot(work_dir)
    result = setup(work_dir, "--config", str(path))
    mark = caught.value.problem_mark
    assert_config_failure(result, f"{path}:{mark.line + 1}:{mark.column + 1}: YAML syntax error")
    assert result.metrics["use_singularity"] == "Undefined"
    assert snapshot(work_dir) == before


def test_invalid_yaml_config_names_every_problem(work_dir: Path) -> None:
    path = DATA / "invalid" / "values.yaml"
    result = setup(work_dir, "--config", str(path))
    assert_config_failure(result, f"{path}:4:3: defaults.budget_seconds: expected a positive",
                          "entries.TAGGED.settings.singularity.x: invalid value")
    assert result.detail.count(f"{path}:") == 10


@pytest.mark.parametrize("option", ["--config", "--config-dir"])
def test_missing_config_file_or_dir_is_a_config_failure(work_dir: Path, option: str) -> None:
    missing = work_dir / "nowhere"
    assert_config_failure(setup(work_dir, option, str(missing)),
                          f"{missing}: cannot read: No such file or directory")


def test_missing_config_dir_from_the_environment_is_a_config_failure(work_dir: Path) -> None:
    missing = work_dir / "nowhere"
    result = setup(work_dir, env={"GLIDEIN_PLUGINS_CONFIG_DIR": str(missing)})
    assert_config_failure(result, f"{missing}: cannot read")


def write_entry_config(path: Path, plugins: str) -> Path:
    path.write_text(f"entries:\n  TEST_ENTRY:\n    plugins: {plugins}\n")
    return path


def test_unknown_optional_plugin_is_reported_and_skipped(work_dir: Path, tmp_path: Path) -> None:
    config = write_entry_config(tmp_path / "entry.yaml", "{optional: [no_such_plugin]}")
    set_lines(work_dir, (work_dir / "glidein_config").read_text()
              + "GLIDEIN_Singularity_Use NEVER\n")
    result = setup(work_dir, "--config", str(config))
    assert (result.exit_code, result.config["HAS_SINGULARITY"]) == (0, "False")
    assert "plugin no_such_plugin (?): unknown plugin" in result.stdout


def test_unknown_enabled_plugin_fails_naming_it(work_dir: Path, tmp_path: Path) -> None:
    """A VO's plugin that is not there must never be skipped silently: its veto would be."""
    config = write_entry_config(tmp_path / "entry.yaml", "{enable: [no_such_plugin]}")
    result = setup(work_dir, "--config", str(config))
    assert_config_failure(result, "plugin no_such_plugin (?): unknown plugin")


def test_unknown_required_plugin_fails_naming_it(work_dir: Path, tmp_path: Path) -> None:
    config = write_entry_config(tmp_path / "entry.yaml", "{required: [no_such_plugin]}")
    before = snapshot(work_dir)
    result = setup(work_dir, "--config", str(config))
    assert_config_failure(result, "plugin no_such_plugin", "unknown plugin")
    assert snapshot(work_dir) == before


def test_disabling_the_mode_plugin_is_a_config_failure(work_dir: Path) -> None:
    result = setup(work_dir, env={"GLIDEIN_PLUGINS_DISABLE": "mode,gpus"})
    assert_config_failure(result, "no plugin decided the Singularity mode")


# -- container settings -------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "value", "failure", "message"), [
    ("SINGULARITY_IMAGE_RESTRICTIONS", "cvmfs,bogus", "Config", "unknown restriction bogus"),
    ("SINGULARITY_IMAGES_DICT", "rhel9:/cvmfs/a,:/cvmfs/b", "VO_Config", "has no platform key"),
], ids=["factory-restrictions", "frontend-images-dict"])
def test_bad_container_setting_fails_naming_its_line(work_dir: Path, key: str, value: str,
                                                     failure: str, message: str) -> None:
    set_lines(work_dir, (work_dir / "glidein_config").read_text()
              + f"GLIDEIN_Singularity_Use PREFERRED\n{key} {value}\n")
    line = len((work_dir / "glidein_config").read_text().splitlines())
    before = snapshot(work_dir)
    result = setup(work_dir)
    # a Factory setting is the Factory's Config problem; a Frontend one is VO_Config
    assert (result.exit_code, result.failure) == (1, failure), result.stdout
    assert f"glidein_config:{line}: {key}" in result.detail
    assert message in result.detail and message in result.stdout
    assert snapshot(work_dir) == before
