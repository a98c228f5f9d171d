"""Fuzzing (hypothesis) the promise of ``check-config``: no factory config it accepts is then
refused by the setup on a node (a ``Config`` failure), and none makes the setup crash.

Configs are drawn from every plugin's declared settings (right and wrong values, misspelt
keys), the GlideinWMS values an entry may set in ``attributes``, plugin lists and budgets,
written as YAML. Each accepted one runs a real setup, in-process, on a bare node (no runtime,
no image): what fails there must be the node, never the config.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import bare_node_env, make_work_dir
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from glidein_plugins.config import factory_config
from glidein_plugins.engine import config_check, registry
from glidein_plugins.errors import FailureType
from glidein_plugins.runs.session import run_setup

DECLARED = registry.builtin_declarations()
WORDS = ["", "x", "-x", "--nv", "/abs/path", "relative/path", "oasis.opensciencegrid.org",
         "bad name", "/a:/b", "/a:/b:ro", "/a:/b:c:d"]
VALUES = st.sampled_from([
    0, 1, 3, -1, 2.5, 1e-9, 1e300, float("inf"), True, False, None, "soon", {"k": 1}, [[1]],
]) | st.sampled_from(WORDS) | st.lists(st.sampled_from(WORDS), max_size=2) | st.integers() \
    | st.text(max_size=6)
ATTRIBUTE_VALUES = st.sampled_from([
    "", "NEVER", "OPTIONAL", "PREFERRED", "REQUIRED", "REQUIRED_GWMS", "DISABLE_GWMS", "required",
    "MANDATORY", "cvmfs", "cvmfs,remote", "remot", "any,test", "/a", "/a:/b:ro", "/a:/b:c:d",
    "rel:/x", "rhel9:/cvmfs/x", ":/x", "rhel9:docker://a/b", " , ",
])
NAMES = st.lists(st.sampled_from(["mode", "images", "cvmfs", "binds", "osg", "cms", "atlas",
                                  "singularity", "launch"]), max_size=2, unique=True)


def values_like(default: Any) -> st.SearchStrategy[Any]:
    """Values of the default's kind (right or wrong in meaning) five times in six, else any."""
    if isinstance(default, list):
        alike: st.SearchStrategy[Any] = st.lists(st.sampled_from(WORDS), max_size=2)
    elif isinstance(default, bool):
        alike = st.booleans()
    elif isinstance(default, (int, float)):
        alike = st.sampled_from([0, 1, 3, 2.5, 1e-9, 1e300, -1, default])
    else:
        alike = st.sampled_from(WORDS) | st.none()
    return st.one_of(*[alike] * 5, VALUES)


@st.composite
def plugin_settings(draw: st.DrawFn) -> dict[str, dict[str, Any]]:
    chosen = draw(st.lists(st.sampled_from(sorted(DECLARED)), max_size=2, unique=True))
    found = {}
    for plugin in chosen:
        keys = draw(st.lists(st.sampled_from([*DECLARED[plugin]] * 3 + ["timout"]), max_size=3,
                             unique=True))
        found[plugin] = {key: draw(values_like(DECLARED[plugin].get(key))) for key in keys}
    return found


@st.composite
def sections(draw: st.DrawFn) -> dict[str, Any]:
    section: dict[str, Any] = {}
    if draw(st.booleans()):
        section["budget_seconds"] = draw(st.sampled_from([30, 120, 120, 120, 120, "x"]))
    lists = draw(st.dictionaries(st.sampled_from(["enable", "disable", "required", "optional"]),
                                 NAMES, max_size=1))
    if lists:
        section["plugins"] = lists
    attributes = draw(st.dictionaries(st.sampled_from(sorted(config_check.ATTRIBUTE_RULES)),
                                      ATTRIBUTE_VALUES, max_size=1))
    if attributes:
        section["attributes"] = attributes
    found = draw(plugin_settings())
    if found:
        section["settings"] = found
    return section


CONFIGS = st.fixed_dictionaries({"version": st.just(1)}, optional={
    "defaults": sections(), "entries": st.fixed_dictionaries({}, optional={
        "TEST_ENTRY": sections(), "OTHER_ENTRY": sections()})})


def accepted(path: Path) -> bool:
    """What ``check-config`` says of ``path``: no problem at all."""
    config, errors = factory_config.load_checked([path])
    return not errors and not config_check.check(config)[0]


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("config-fuzz")


EXAMPLES = int(os.environ.get("CONFIG_FUZZ_EXAMPLES", "300"))  # more to hunt: 3000


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(config=CONFIGS, frontend=st.sampled_from([None, "PREFERRED", "PREFERRED", "REQUIRED"]))
@example(config={"version": 1, "defaults": {"settings": {"probe": {"cache_ttl": 0}}}},
         frontend="PREFERRED")
@example(config={"version": 1, "entries": {"TEST_ENTRY": {
    "attributes": {"GLIDEIN_SINGULARITY_REQUIRE": "required"},
    "settings": {"cvmfs": {"repositories": ["oasis.opensciencegrid.org"]}}}}}, frontend=None)
def test_what_check_config_accepts_the_setup_never_refuses(
        fuzz_root: Path, config: dict[str, Any], frontend: str | None) -> None:
    with tempfile.TemporaryDirectory(dir=fuzz_root) as name:
        directory = Path(name)
        path = directory / "entry.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        if not accepted(path):
            event("refused by check-config")
            return
        event("accepted: a setup runs")
        work = make_work_dir(directory / "work", {"GLIDEIN_Singularity_Use": frontend}
                             if frontend else {})
        outcome = run_setup(Path("glidein_config"), "entry", [path], work,
                            bare_node_env(directory / "node"))
        failure = outcome.report.failure
        assert failure is None or failure.type not in (
            FailureType.CONFIG, FailureType.CORRUPTION), (path.read_text(), failure)
