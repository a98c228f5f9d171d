"""Every factory config the project ships passes ``glidein-plugins check-config``, alone and
together (as the setup hook loads them), and the example's entries do what its comments say."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

SHIPPED = sorted((ROOT / "factory_configs").glob("*.yaml"))
EMBEDDED = ROOT / "glidein_plugins" / "config" / "default_config.yaml"
EXAMPLE = ROOT / "factory_configs" / "example.yaml"


def test_factory_configs_are_shipped() -> None:
    assert EXAMPLE in SHIPPED


@pytest.mark.parametrize("files", [
    *([path] for path in [EMBEDDED, *SHIPPED]),
    SHIPPED,  # all at once: no entry is defined twice across files
], ids=[*(path.name for path in [EMBEDDED, *SHIPPED]), "all"])
def test_check_config_accepts(files: list[Path], tmp_path: Path) -> None:
    proc = run_cli(["check-config", *map(str, files)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("OK: ")
    assert proc.stderr == ""


@pytest.mark.parametrize(("entry", "outcome", "publishes"), [
    ("EXAMPLE_SITE_ce1_containers", "REQUIRED", None),  # pass/fail depends on this node
    ("EXAMPLE_SITE_ce2_preferred", "PREFERRED", True),
    ("EXAMPLE_SITE_ce3_bare_metal", "NEVER", False),  # the singularity plugin is disabled
])
def test_example_entries(entry: str, outcome: str, publishes: bool | None,
                         tmp_path: Path) -> None:
    """A Frontend that prefers containers meets each example entry."""
    proc = run_cli(["run", "--json", "--config", str(EXAMPLE), "--entry", entry,
                    "--set", "GLIDEIN_Singularity_Use=PREFERRED"], cwd=tmp_path)
    report = json.loads(proc.stdout)
    assert report["mode"]["outcome"] == outcome
    names = {attribute["name"] for attribute in report["attributes"]}
    if publishes is not None:
        assert proc.returncode == 0, proc.stderr
        assert ("GWMS_SINGULARITY_STATUS" in names) is publishes


def tutorial_example(kind: str, number: int = 0) -> str:
    """The ``kind`` code block ``number`` of the VO plugin tutorial (docs/plugins/tutorial.md)."""
    text = (ROOT / "docs" / "plugins" / "tutorial.md").read_text(encoding="utf-8")
    return text.split(f"```{kind}\n")[number + 1].split("```", 1)[0]


@pytest.mark.parametrize("veto", [False, True], ids=["publishes", "vetoes"])
def test_tutorial_vo_plugin_example_runs(tmp_path: Path, veto: bool) -> None:
    """The tutorial's plugin and entry config, as a reader would copy them."""
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "myvo.py").write_text(tutorial_example("python"))
    config = tutorial_example("yaml")
    if veto:  # the plugin's documented setting: no VO repository on this node is fatal
        config = config.replace("profile: gpu", "profile: gpu\n        require_repository: true")
    (tmp_path / "myvo.yaml").write_text(config)
    check = run_cli(["check-config", "myvo.yaml"], cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    proc = run_cli(["run", "--json", "--config", "myvo.yaml", "--entry", "MYVO_SITE_ce1"],
                   cwd=tmp_path)
    report = json.loads(proc.stdout)
    if veto:
        assert proc.returncode == 1
        assert report["failure"]["type"] == "WN_Resource"
        assert "myvo.example.org is not mounted" in report["failure"]["message"]
        return
    assert proc.returncode == 0, proc.stderr
    published = {a["name"]: (a["value"], a["plugin"]) for a in report["attributes"]}
    assert published["MYVO_PROFILE"] == ("gpu", "myvo")
    assert published["MYVO_CVMFS"][1] == "myvo"
    tried = [runtime["source"] for runtime in report["rejected_runtimes"]]
    assert "myvo" in tried  # its runtime candidate was proposed (and, unprobed, rejected)


def test_tutorial_test_passes_with_the_kit(tmp_path: Path) -> None:
    """The tutorial's test of its plugin, with the pytest kit, as a plugin author runs it."""
    (tmp_path / "myvo.py").write_text(tutorial_example("python"))
    (tmp_path / "test_myvo.py").write_text(tutorial_example("python", 1))
    environ = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    # the kit is registered through the pytest11 entry point when installed; name it here
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "glidein_plugins.testing", "test_myvo.py"],
                          cwd=tmp_path, env=environ, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
