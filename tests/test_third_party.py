"""Third-party VO plugins, as a VO ships them: distributions installed with pip, found through
the ``glidein_plugins`` entry-point group, and tested with the plugin-author kit.

``tests/plugins/sample_vo_dist`` (``glidein-plugins-sample-vo``, plugin ``samplevo``) and
``tests/plugins/broken_vo_dist`` (``glidein-plugins-broken-vo``, plugin ``brokenvo``, which
raises at import) are installed offline with ``pip install --target`` from a copy (a build
writes into its source tree) and put on PYTHONPATH; the CLI then runs as a real subprocess.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT, glidein_result, make_work_dir, run_cli, startd_values

from glidein_plugins.protocol.htcondor import job_ad
from glidein_plugins.tarball import pack
from glidein_plugins.testing import Expr, PluginLoadError, ad_literal, run_phases_in

SAMPLE = ("glidein-plugins-sample-vo", "0.3.1")
BROKEN = ("glidein-plugins-broken-vo", "9.9.0")
CONFIG = """\
version: 1
entries:
  SAMPLE:
    plugins:
      enable: [samplevo, brokenvo]
      optional: [brokenvo]
    settings:
      samplevo:
        site: Sample_Site
  STRICT:
    plugins:
      enable: [samplevo]
      required: [brokenvo]
  ENABLED:
    plugins:
      enable: [samplevo, brokenvo]
  PLAIN: {}
"""


@pytest.fixture
def node(tmp_path, fake_cvmfs, installed) -> dict[str, str]:
    """A fake node (no runtime) with both distributions importable, and the config file."""
    (tmp_path / "cfg.yaml").write_text(CONFIG)
    return fake_cvmfs.env(PYTHONPATH=os.pathsep.join(
        [str(ROOT), str(installed["sample_vo_dist"]), str(installed["broken_vo_dist"])]))


def plugin_rows(stdout: str) -> dict[str, list[str]]:
    """``glidein-plugins plugins``'s table: name -> [source, distribution, hooks]."""
    rows = [re.split(r"\s{2,}", line.strip()) for line in stdout.splitlines()
            if line.startswith("  ")]
    return {row[0]: row[1:] for row in rows[1:]}


def test_an_enabled_plugin_is_found_by_entry_point_and_an_optional_broken_one_skipped(
        tmp_path, node) -> None:
    proc = run_cli(["plugins", "--entry", "SAMPLE", "--config", "cfg.yaml"], tmp_path, node)
    assert proc.returncode == 0, proc.stderr
    rows = plugin_rows(proc.stdout)
    assert rows["samplevo"][:2] == ["entry point", " ".join(SAMPLE)]
    assert "glidein_images_contribute" in rows["samplevo"][2]
    assert "brokenvo" not in rows
    skipped = [line for line in proc.stdout.splitlines() if line.startswith("Skipped:")]
    assert skipped == [f"Skipped: plugin brokenvo ({BROKEN[0]}): failed to load: RuntimeError: "
                       "brokenvo cannot start: its site configuration module is missing"]
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.parametrize(("entry", "code"), [("PLAIN", 0), ("STRICT", 1)])
def test_an_installed_plugin_runs_only_where_enabled_and_a_required_broken_one_is_fatal(
        tmp_path, node, entry, code) -> None:
    proc = run_cli(["plugins", "--entry", entry, "--config", "cfg.yaml"], tmp_path, node)
    assert proc.returncode == code, proc.stdout + proc.stderr
    rows = plugin_rows(proc.stdout)
    assert ("samplevo" in rows) == (entry == "STRICT")
    assert (f"plugin brokenvo ({BROKEN[0]})" in proc.stdout) == (entry == "STRICT")
    if entry == "PLAIN":  # installed, not enabled here: still listed with its distribution
        assert f"samplevo ({' '.join(SAMPLE)})" in proc.stdout


def test_setup_advertises_the_third_party_plugin_and_survives_the_broken_one(
        tmp_path, node, classad2) -> None:
    work = make_work_dir(tmp_path / "glide", {"GLIDEIN_Entry_Name": "SAMPLE",
                                              "GLIDEIN_Site": "Config_Site"})
    proc = run_cli(["setup", "glidein_config", "--config", str(tmp_path / "cfg.yaml")], work,
                   node)
    result = glidein_result(proc, work)
    assert result.status == "OK", (result.detail, proc.stderr)
    assert result.config["SAMPLEVO_SITE"] == "Sample_Site"
    assert result.config["SAMPLEVO_READY"] == "False"  # no sample-vo repository on this node
    assert startd_values(result, classad2)["SAMPLEVO_READY"] is False
    assert f"plugin brokenvo ({BROKEN[0]}): failed to load" in proc.stdout


@pytest.mark.parametrize("entry", ["STRICT", "ENABLED"])
def test_setup_fails_with_the_distribution_named_when_the_broken_plugin_is_not_optional(
        tmp_path, node, entry) -> None:
    work = make_work_dir(tmp_path / "glide", {"GLIDEIN_Entry_Name": entry})
    proc = run_cli(["setup", "glidein_config", "--config", str(tmp_path / "cfg.yaml")], work,
                   node)
    result = glidein_result(proc, work)
    assert (result.exit_code, result.failure) == (1, "Config")
    assert f"plugin brokenvo ({BROKEN[0]}): failed to load: RuntimeError" in result.detail
    assert "SAMPLEVO_SITE" not in result.config  # nothing published by a failed setup


# -- the kit, used from outside: the sample distribution's own tests ---------------------------

# how the kit is loaded: by its pytest11 entry point alone, and also named explicitly, which
# must not register it twice (the entry point is named after the module for that reason)
@pytest.mark.parametrize("extra", ["entry point", "conftest pytest_plugins", "-p option"])
def test_the_sample_distributions_own_tests_pass_with_the_kit(installed, extra) -> None:
    source = installed["sample_vo_dist/src"]
    conftest = source / "tests" / "conftest.py"
    conftest.unlink(missing_ok=True)
    if extra == "conftest pytest_plugins":
        conftest.write_text('pytest_plugins = ["glidein_plugins.testing"]\n')
    options = ["-p", "glidein_plugins.testing"] if extra == "-p option" else []
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": os.pathsep.join(
        [str(ROOT), str(installed["sample_vo_dist"])])}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", *options, "tests"],
                          cwd=source, env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert re.search(r"\b4 passed\b", proc.stdout), proc.stdout[-2000:]


# -- the kit's own pieces ----------------------------------------------------------------------

def test_the_ads_the_kit_writes_read_back_as_htcondor_writes_them(make_ad) -> None:
    odd = '/images/"odd"\\name.sif\\'
    path = make_ad("job", {"SingularityImage": odd, "RequestGPUs": 2, "WantOS": True,
                           "Requirements": Expr("TARGET.HasSingularity && RequestGPUs > 0")})
    ad = job_ad.read(path)
    assert ad.string("SingularityImage") == odd
    assert (ad.integer("RequestGPUs"), ad.boolean("WantOS")) == (2, True)
    assert ad["Requirements"] == "TARGET.HasSingularity && RequestGPUs > 0"
    with pytest.raises(ValueError, match="control characters"):
        ad_literal("two\nlines")


def test_a_plugin_that_cannot_load_is_an_error_naming_it(tmp_path) -> None:
    plugin = tmp_path / "plugins" / "halfdone.py"
    plugin.parent.mkdir()
    plugin.write_text("def glidein_attribute_contribute(context, facts):\n    return []\n")
    with pytest.raises(PluginLoadError, match=r"halfdone \(site\): implements unknown hook "
                       r"'glidein_attribute_contribute' \(did you mean "
                       r"'glidein_attributes_contribute'"):
        run_phases_in(plugin, tmp_path / "work")


def test_the_glidein_tarball_leaves_the_kit_out() -> None:
    files = pack.sources().contents
    assert "glidein_plugins/engine/runner.py" in files
    assert not [name for name in files if name.startswith("glidein_plugins/testing/")]
