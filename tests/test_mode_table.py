"""The Singularity mode negotiation end to end: ``glidein-plugins setup glidein_config entry`` run
as glidein_startup.sh runs it (relative glidein_config, cwd = work dir, stdin closed), checked
against the GlideinWMS reference table through what it leaves behind: exit code, result XML,
glidein_config values and condor_vars.lst lines (whose values HTCondor's parser must accept)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import GlideinResult, glidein_result, make_work_dir, run_cli, startd_values

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
PUBLISHED = ("HAS_SINGULARITY", "HAS_SINGULARITY_REASON", "GWMS_SINGULARITY_STATUS")
VARS_LINES = {"HAS_SINGULARITY": "HAS_SINGULARITY C - + N Y +",
              "HAS_SINGULARITY_REASON": "HAS_SINGULARITY_REASON S - + N Y +",
              "GWMS_SINGULARITY_STATUS": "GWMS_SINGULARITY_STATUS S - + N Y +"}


class Run:
    """One setup run: the work dir, its files before the run, and the result."""

    def __init__(self, work_dir: Path, config_files: tuple[str, ...] = ()) -> None:
        self.work_dir = work_dir
        self.config_before = (work_dir / "glidein_config").read_bytes()
        self.vars_before = (work_dir / "condor_vars.lst").read_bytes()
        args = ["setup", "glidein_config", "entry"]
        for path in config_files:
            args += ["--config", path]
        self.result: GlideinResult = glidein_result(run_cli(args, work_dir), work_dir)

    @property
    def untouched(self) -> bool:
        return ((self.work_dir / "glidein_config").read_bytes() == self.config_before
                and (self.work_dir / "condor_vars.lst").read_bytes() == self.vars_before
                and not (self.work_dir / "glidein_config.history").exists())


def setup_run(work_dir: Path, values: dict[str, str], config_files: tuple[str, ...] = ()) -> Run:
    return Run(make_work_dir(work_dir, values), config_files)


def assert_outcome(run: Run, outcome: str) -> None:
    """What the reference does for each outcome of the table."""
    result = run.result
    assert result.metrics["singularity_mode"] == outcome
    if outcome in ("DISABLE", "FAIL"):
        assert result.metrics["use_singularity"] == "Undefined"
    if outcome == "FAIL":
        assert (result.exit_code, result.failure) == (1, "VO_Config"), result.stdout
    elif outcome == "REQUIRED":  # no runtime on this machine: no discovery plugin exists yet
        assert (result.exit_code, result.failure) == (1, "WN_Resource"), result.stdout
        assert "REQUIRED" in result.detail and "runtime" in result.detail
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
    assert ("not wanted" if outcome == "NEVER" else "no container runtime") in reason
    assert {name: result.condor_vars.get(name) for name in PUBLISHED} == VARS_LINES
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
                {FRONTEND_KEY: frontend, FACTORY_KEY: factory})
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
    assert (run.result.exit_code, run.result.failure) == (1, "VO_Config")
    assert f"{FACTORY_KEY}='sometimes' ({config}:{line_of_yaml(config, 'sometimes')})" \
        in run.result.detail


def line_of_yaml(path: Path, text: str) -> int:
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1)
                if text in line)
