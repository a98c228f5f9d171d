"""The Singularity mode negotiation end to end: ``glidein-plugins setup glidein_config entry`` run
as glidein_startup.sh runs it (relative glidein_config, cwd = work dir, stdin closed), checked
against the GlideinWMS reference table through what it leaves behind: exit code, result XML,
glidein_config values and condor_vars.lst lines (whose values HTCondor's parser must accept).

Every run is on a bare node (``bare_node_env``): the real built-in discovery looks for a runtime
and finds none it can prove, whatever machine runs the tests, so PREFERRED falls back to
``HAS_SINGULARITY=False`` and REQUIRED fails, each naming every candidate tried. No GPU is
looked for there (the ``gpus`` plugin is blocked): what is published is the mode's alone."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import (
    GlideinResult,
    bare_node_env,
    glidein_result,
    make_work_dir,
    run_cli,
    startd_values,
)

FRONTEND_KEY = "GLIDEIN_Singularity_Use"
FACTORY_KEY = "GLIDEIN_SINGULARITY_REQUIRE"
FACTORY_VALUES = ("NEVER", "OPTIONAL", "PREFERRED", "REQUIRED", "REQUIRED_GWMS")

# The reference table (singularity_setup.sh), typed out again here on purpose rather than
# imported: rows are the Frontend's GLIDEIN_Singularity_Use, columns the Factory's value.
REFERENCE = """
DISABLE_GWMS  DISABLE  DISABLE    DISABLE    DISABLE   FAIL
NEVER         NEVER    NEVER      NEVER      FAIL      FAIL
OPTIONAL      NEVER    NEVER      PREFERRED  REQUIRED  REQUIRED
PREFERRED     NEVER    PREFERRED  PREFERRED  REQUIRED  REQUIRED
REQUIRED      FAIL     REQUIRED   REQUIRED   REQUIRED  REQUIRED
"""
EXPECTED = {
    (row[0], factory): outcome
    for row in (line.split() for line in REFERENCE.strip().splitlines())
    for factory, outcome in zip(FACTORY_VALUES, row[1:])
}
# name -> type: what NEVER publishes (the reference's two names, and our reason) ...
NEVER_PUBLISHED = {"HAS_SINGULARITY": "C", "HAS_SINGULARITY_REASON": "S",
                   "GWMS_SINGULARITY_STATUS": "S"}
# ... and what PREFERRED without a runtime adds: the host facts looked at on the way
PREFERRED_PUBLISHED = {**NEVER_PUBLISHED, "GLIDEIN_NESTED_CONTAINER": "C",
                       "GLIDEIN_NESTED_CONTAINER_REASON": "S",
                       "HAS_UNPRIVILEGED_USER_NAMESPACES": "S"}
OSG_BINARY = "oasis.opensciencegrid.org/mis/singularity/bin/singularity"


class Run:
    """One setup run on a bare node: the work dir, its files before the run, and the result."""

    def __init__(self, work_dir: Path, config_files: tuple[str, ...] = (),
                 node: Path | None = None) -> None:
        self.work_dir = work_dir
        self.node = node or work_dir.parent / "bare-node"  # the empty CVMFS_MOUNT_DIR
        self.config_before = (work_dir / "glidein_config").read_bytes()
        self.vars_before = (work_dir / "condor_vars.lst").read_bytes()
        args = ["setup", "glidein_config", "entry"]
        for path in config_files:
            args += ["--config", path]
        proc = run_cli(args, work_dir, bare_node_env(self.node))
        self.result: GlideinResult = glidein_result(proc, work_dir)

    @property
    def untouched(self) -> bool:
        return ((self.work_dir / "glidein_config").read_bytes() == self.config_before
                and (self.work_dir / "condor_vars.lst").read_bytes() == self.vars_before
                and not (self.work_dir / "glidein_config.history").exists())


def setup_run(work_dir: Path, values: dict[str, str], config_files: tuple[str, ...] = (),
              node: Path | None = None) -> Run:
    return Run(make_work_dir(work_dir, values), config_files, node)


def assert_names_every_candidate(run: Run, text: str) -> None:
    """The real discovery proposed the OSG binary (rebased on the empty CVMFS_MOUNT_DIR) and
    rejected it, like every other candidate, for want of an image to test with."""
    assert "no working container runtime among" in text, text
    assert re.search(rf"{re.escape(f'{run.node}/{OSG_BINARY}')} \([^)]+\): .*does not exist",
                     text), text


def assert_outcome(run: Run, outcome: str) -> None:
    """What the reference does for each outcome of the table."""
    result = run.result
    assert result.metrics["singularity_mode"] == outcome
    if outcome in ("DISABLE", "FAIL"):
        assert result.metrics["use_singularity"] == "Undefined"
    if outcome == "FAIL":
        assert (result.exit_code, result.failure) == (1, "VO_Config"), result.stdout
    elif outcome == "REQUIRED":  # a bare node: no runtime can be proven
        assert (result.exit_code, result.failure) == (1, "WN_Resource"), result.stdout
        assert result.detail.startswith("Singularity is REQUIRED but "), result.detail
        assert_names_every_candidate(run, result.detail)
    else:
        assert (result.exit_code, result.status) == (0, "OK"), result.stdout
    if outcome in ("DISABLE", "FAIL", "REQUIRED"):
        assert run.untouched, "nothing may be advertised"
        return
    # NEVER, or PREFERRED without a runtime: HAS_SINGULARITY=False, with the reason
    assert result.metrics["use_singularity"] == "False"
    assert result.config["HAS_SINGULARITY"] == "False"
    assert result.config["GWMS_SINGULARITY_STATUS"] == outcome
    reason = result.config["HAS_SINGULARITY_REASON"]
    assert reason == " ".join(reason.split()) and reason
    published = {name: row for name, row in result.condor_vars.items() if name != "GLIDEIN_Site"}
    if outcome == "NEVER":  # nothing looked for, nothing more published
        assert reason.startswith("containers not wanted: "), reason
        expected = NEVER_PUBLISHED
        assert set(published) == set(expected)
    else:
        assert_names_every_candidate(run, reason)
        expected = PREFERRED_PUBLISHED
    for name, kind in expected.items():
        assert published[name] == f"{name} {kind} - + N Y +"
    # the lines already there are kept, byte for byte
    assert (run.work_dir / "condor_vars.lst").read_bytes().startswith(run.vars_before)
    assert (run.work_dir / "glidein_config").read_bytes().startswith(run.config_before)


@pytest.fixture(scope="module")
def table_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Run]:
    """The 25 setup runs of the table, a few at a time (they are independent processes)."""
    base = tmp_path_factory.mktemp("table")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            (frontend, factory): pool.submit(
                setup_run, base / f"{frontend}-{factory}",
                {FRONTEND_KEY: frontend, FACTORY_KEY: factory}, node=base / "bare-node")
            for frontend, factory in EXPECTED}
        return {cell: future.result() for cell, future in futures.items()}


@pytest.mark.parametrize(("frontend", "factory"), list(EXPECTED))
def test_reference_table(table_runs: dict[tuple[str, str], Run], frontend: str,
                         factory: str) -> None:
    run = table_runs[(frontend, factory)]
    assert_outcome(run, EXPECTED[(frontend, factory)])
    if EXPECTED[(frontend, factory)] == "FAIL":
        assert f"{FRONTEND_KEY}={frontend}" in run.result.detail
        assert f"{FACTORY_KEY}={factory}" in run.result.detail


@pytest.mark.parametrize(("frontend", "factory"),
                         [cell for cell, outcome in EXPECTED.items()
                          if outcome in ("NEVER", "PREFERRED")])
def test_published_values_parse_as_classads(table_runs: dict[tuple[str, str], Run],
                                            frontend: str, factory: str, classad2) -> None:
    ad = startd_values(table_runs[(frontend, factory)].result, classad2)
    assert ad["HAS_SINGULARITY"] is False
    assert ad["GWMS_SINGULARITY_STATUS"] == EXPECTED[(frontend, factory)]
    assert isinstance(ad["HAS_SINGULARITY_REASON"], str) and ad["HAS_SINGULARITY_REASON"]
    if EXPECTED[(frontend, factory)] == "PREFERRED":
        assert ad["HAS_UNPRIVILEGED_USER_NAMESPACES"] in (
            "enabled", "disabled", "unavailable", "error")
        assert isinstance(ad["GLIDEIN_NESTED_CONTAINER"], bool)
        assert ad["GLIDEIN_NESTED_CONTAINER_REASON"]


@pytest.mark.parametrize(("values", "outcome"), [
    ({}, "DISABLE"),  # neither side set: DISABLE_GWMS x OPTIONAL
    ({FRONTEND_KEY: "", FACTORY_KEY: ""}, "DISABLE"),
    ({FRONTEND_KEY: "", FACTORY_KEY: "REQUIRED_GWMS"}, "FAIL"),  # DISABLE_GWMS, not OPTIONAL
    ({FRONTEND_KEY: "OPTIONAL"}, "NEVER"),  # the Factory side defaults to OPTIONAL ...
    ({FRONTEND_KEY: "PREFERRED", FACTORY_KEY: ""}, "PREFERRED"),  # ... not NEVER
    ({FRONTEND_KEY: "REQUIRED", FACTORY_KEY: ""}, "REQUIRED"),
], ids=["unset", "empty", "empty-frontend", "unset-factory", "empty-factory", "required"])
def test_empty_or_missing_values_use_the_defaults(tmp_path: Path, values: dict[str, str],
                                                  outcome: str) -> None:
    assert_outcome(setup_run(tmp_path / "work", values), outcome)


@pytest.mark.parametrize(("frontend", "factory", "outcome"), [
    (" preferred ", "Optional", "PREFERRED"),
    ("\tRequired", "  never", "FAIL"),
    ("optional  ", "required_gwms ", "REQUIRED"),
    ("Never", "preferred", "NEVER"),
])
def test_values_are_case_insensitive_and_trimmed(tmp_path: Path, frontend: str, factory: str,
                                                 outcome: str) -> None:
    run = setup_run(tmp_path / "work", {FRONTEND_KEY: frontend, FACTORY_KEY: factory})
    assert_outcome(run, outcome)


def line_of(path: Path, key: str) -> int:
    """The number of the line that sets ``key`` last (the one GlideinWMS uses)."""
    numbers = [number for number, line in enumerate(path.read_text().splitlines(), 1)
               if line.split(" ")[0] == key]
    return numbers[-1]


@pytest.mark.parametrize(("values", "bad_key", "bad_value"), [
    ({FRONTEND_KEY: "sometimes", FACTORY_KEY: "OPTIONAL"}, FRONTEND_KEY, "sometimes"),
    ({FRONTEND_KEY: "PREFERRED", FACTORY_KEY: "ALWAYS"}, FACTORY_KEY, "ALWAYS"),
    ({FRONTEND_KEY: "DISABLE"}, FRONTEND_KEY, "DISABLE"),  # an outcome, not a Frontend value
])
def test_unknown_value_fails_naming_it_and_its_line(tmp_path: Path, values: dict[str, str],
                                                    bad_key: str, bad_value: str) -> None:
    run = setup_run(tmp_path / "work", values)
    assert (run.result.exit_code, run.result.failure) == (1, "VO_Config")
    line = line_of(run.work_dir / "glidein_config", bad_key)
    assert f"{bad_key}='{bad_value}' (glidein_config:{line})" in run.result.detail
    assert run.untouched


def test_last_line_for_a_key_wins(tmp_path: Path) -> None:
    work = make_work_dir(tmp_path / "work", {FRONTEND_KEY: "bogus", FACTORY_KEY: "NEVER"})
    with open(work / "glidein_config", "a") as config:
        config.write(f"{FRONTEND_KEY} PREFERRED\n{FACTORY_KEY} bogus\n{FACTORY_KEY} PREFERRED\n")
    assert_outcome(Run(work), "PREFERRED")


MODE_YAML = f"""\
version: 1
defaults:
  attributes:
    {FACTORY_KEY}: NEVER
entries:
  TEST_ENTRY:
    attributes:
      {FACTORY_KEY}: REQUIRED
  OTHER_ENTRY:
    attributes:
      {FACTORY_KEY}: sometimes
"""


@pytest.mark.parametrize(("values", "outcome"), [
    ({FRONTEND_KEY: "PREFERRED"}, "REQUIRED"),  # the entry's section over the defaults
    ({FRONTEND_KEY: "PREFERRED", FACTORY_KEY: "OPTIONAL"}, "PREFERRED"),  # glidein_config wins
    ({FRONTEND_KEY: "PREFERRED", "GLIDEIN_Entry_Name": "UNLISTED"}, "NEVER"),  # defaults
    ({FRONTEND_KEY: "PREFERRED", "GLIDEIN_Entry_Name": "OTHER_ENTRY", FACTORY_KEY: "NEVER"},
     "NEVER"),  # glidein_config wins over a bad YAML value too
], ids=["entry-section", "glidein_config-wins", "defaults", "glidein_config-wins-over-bad"])
def test_yaml_attributes_are_defaults_under_glidein_config(
        tmp_path: Path, values: dict[str, str], outcome: str) -> None:
    (tmp_path / "entries.yaml").write_text(MODE_YAML)
    run = setup_run(tmp_path / "work", values, (str(tmp_path / "entries.yaml"),))
    assert_outcome(run, outcome)


def test_bad_yaml_value_is_named_with_its_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "entries.yaml"
    config.write_text(MODE_YAML)
    run = setup_run(tmp_path / "work", {FRONTEND_KEY: "PREFERRED",
                                        "GLIDEIN_Entry_Name": "OTHER_ENTRY"}, (str(config),))
    # the factory's own config is wrong: checked before any phase, a Config failure naming the
    # file, line, key and value (a wrong value from glidein_config is the mode's VO_Config)
    assert (run.result.exit_code, run.result.failure) == (1, "Config")
    assert run.result.detail.startswith(f"{config}:{line_of_yaml(config, 'sometimes')}:")
    assert f"{FACTORY_KEY}: 'sometimes': not one of NEVER, OPTIONAL" in run.result.detail


def line_of_yaml(path: Path, text: str) -> int:
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1)
                if text in line)
