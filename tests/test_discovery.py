"""Built-in ``discovery``: candidates in GlideinWMS's order, from fake runtimes in real
directories, looked at with real ``stat`` (and ``bash`` for environment modules)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import FakeBin, FakeCvmfs, glidein_result, make_work_dir, run_cli

from glidein_plugins.builtin import discovery
from glidein_plugins.config.model import EntryConfig, Setting
from glidein_plugins.protocol.glideinwms.glidein_config import parse
from glidein_plugins.spec.context import Context, Deadline
from glidein_plugins.spec.results import RuntimeCandidate

OVERRIDE = "GLIDEIN_SINGULARITY_BINARY_OVERRIDE"


@dataclass
class Node:
    """Directories of fake runtimes: ``dirs`` name -> path (for ``str.format``)."""

    tmp: Path
    fakes: FakeBin
    cvmfs: FakeCvmfs
    dirs: dict[str, str]

    def env(self, **values: str) -> dict[str, str]:
        """The fakes' environment with PATH = bin1:bin2 (then /usr/bin:/bin for the tools)."""
        path = f"{self.dirs['bin1']}:{self.dirs['bin2']}:/usr/bin:/bin"
        return self.cvmfs.env(**{"PATH": path, **values})

    def fill(self, text: str) -> str:
        return text.format(**self.dirs)


@pytest.fixture
def node(tmp_path: Path, fake_cvmfs: FakeCvmfs) -> Node:
    fakes = fake_cvmfs.bin
    layout = {  # directory -> runtimes in it
        "override": ["apptainer"], "sbin": ["singularity", "apptainer"],
        "bin1": ["singularity"], "bin2": ["apptainer", "singularity"],
        "condor/usr/libexec": ["apptainer"], "custom": ["apptainer", "singularity"],
        "empty": [],
    }
    dirs = {}
    for name, runtimes in layout.items():
        directory = tmp_path / name
        directory.mkdir(parents=True)
        for runtime in runtimes:
            fakes.install_runtime(runtime, directory=directory)
        dirs[name.split("/")[0]] = str(directory)
    dirs.update(tmp=str(tmp_path), cvmfs=str(fake_cvmfs.root),
                cvmfs_bin=str(fake_cvmfs.osg_binary.parent))
    dirs["osg"] = str(fake_cvmfs.osg_binary)
    return Node(tmp_path, fakes, fake_cvmfs, dirs)


def discover(tmp_path: Path, environ: dict[str, str], config: str = "",
             settings: dict[str, object] | None = None) -> tuple[list[RuntimeCandidate], Context]:
    entry = EntryConfig("TEST", settings={"discovery": {
        key: Setting(value, "test.yaml:1") for key, value in (settings or {}).items()}})
    context = Context(entry, parse(config), tmp_path, Deadline(60), environ)
    return discovery.glidein_runtime_discover(context), context


def probed(candidates: list[RuntimeCandidate], under: Path) -> list[tuple[str, str]]:
    """What the runner probes, in order (by priority, each path once), of the paths under
    ``under`` (a runtime installed on the test machine itself is left out)."""
    seen: dict[str, RuntimeCandidate] = {}
    for candidate in sorted(candidates, key=lambda c: c.priority):
        seen.setdefault(os.path.normpath(candidate.path), candidate)
    return [(c.path, c.source) for c in seen.values() if c.path.startswith(str(under))]


def test_the_reference_order_with_every_source(node):
    node.cvmfs.install_osg_binary()
    environ = node.env(**{OVERRIDE: node.fill("{override}/apptainer"),
                          "SINGULARITY_BIN": node.dirs["sbin"],
                          "CONDOR_DIR": node.fill("{tmp}/condor")})
    found, _ = discover(node.tmp, environ)
    source = node.fill("SINGULARITY_BIN={sbin}")
    assert probed(found, node.tmp) == [(node.fill(path), text) for path, text in [
        ("{override}/apptainer", OVERRIDE),
        ("{sbin}/apptainer", f"{source} (directory)"),
        ("{sbin}/singularity", f"{source} (directory)"),
        ("{bin2}/apptainer", "apptainer on PATH"),
        ("{bin1}/singularity", "singularity on PATH"),
        ("{bin2}/singularity", "singularity on PATH"),
        ("{condor}/apptainer", "HTCondor tarball (CONDOR_DIR)"),
        ("{osg}", "OSG CVMFS"),
    ]]
    priorities = [c.priority for c in found]
    assert priorities == sorted(priorities), "proposed in priority order"


@pytest.mark.parametrize(("override", "expected"), [
    ("{override}/apptainer", [("{override}/apptainer", "")]),
    ("{sbin}:{bin1}", [("{sbin}/apptainer", " (directory)"), ("{sbin}/singularity", " (directory)"),
                       ("{bin1}/singularity", " (directory)")]),
    ("{bin1}::{missing}/apptainer", [("{bin1}/singularity", " (directory)"),
                                     ("{missing}/apptainer", "")]),
    ("{missing}/apptainer", [("{missing}/apptainer", "")]),  # proposed: its rejection explained
    ("{empty}", [("{empty}", " (a directory without apptainer or singularity)")]),
])
def test_override_is_a_file_or_a_path_like_list(node, override, expected):
    node.dirs["missing"] = str(node.tmp / "missing")
    environ = node.env(**{OVERRIDE: node.fill(override), "SINGULARITY_BIN": "PASS"})
    found, _ = discover(node.tmp, environ)
    overrides = [(c.path, c.source) for c in found if c.source.startswith(OVERRIDE)]
    assert overrides == [(node.fill(path), OVERRIDE + suffix) for path, suffix in expected]
    assert all(c.priority < 200 for c in found if c.source.startswith(OVERRIDE))


@pytest.mark.parametrize(("setting", "extra", "expected"), [
    ("", {}, [("{cvmfs_bin}/singularity", "SINGULARITY_BIN=OSG (default)")]),
    ("OSG", {}, [("{cvmfs_bin}/singularity", "SINGULARITY_BIN=OSG")]),
    ("osg", {}, [("{cvmfs_bin}/singularity", "SINGULARITY_BIN=osg")]),
    ("OSG", {"OSG_SINGULARITY_BINARY": "{custom}/singularity"},
     [("{custom}/apptainer", "SINGULARITY_BIN=OSG"),
      ("{custom}/singularity", "SINGULARITY_BIN=OSG")]),
    ("CONDOR", {"CONDOR_DIR": "{tmp}/condor"}, [("{condor}/apptainer", "SINGULARITY_BIN=CONDOR")]),
    ("CONDOR", {}, []),
    ("PATH", {}, [("{bin2}/apptainer", "SINGULARITY_BIN=PATH"),
                  ("{bin1}/singularity", "SINGULARITY_BIN=PATH"),
                  ("{bin2}/singularity", "SINGULARITY_BIN=PATH")]),
    ("PASS", {}, []),
    ("NONE", {}, []),
    ("{sbin}", {}, [("{sbin}/apptainer", "SINGULARITY_BIN={sbin} (directory)"),
                    ("{sbin}/singularity", "SINGULARITY_BIN={sbin} (directory)")]),
    ("{bin1}/singularity", {}, [("{bin1}/singularity", "SINGULARITY_BIN={bin1}/singularity")]),
    ("{tmp}/nowhere", {}, [("{tmp}/nowhere", "SINGULARITY_BIN={tmp}/nowhere")]),
])
def test_singularity_bin_keywords_and_directories(node, setting, extra, expected):
    node.cvmfs.install_osg_binary()
    environ = node.env(SINGULARITY_BIN=node.fill(setting),
                       **{key: node.fill(text) for key, text in extra.items()})
    found, context = discover(node.tmp, environ)
    chosen = [(c.path, c.source) for c in found if 200 <= c.priority < 300]
    assert chosen == [(node.fill(path), node.fill(source)) for path, source in expected]
    if setting in ("CONDOR", "NONE") and not extra:
        assert any(setting in event.message for event in context.trace)


@pytest.mark.parametrize("cvmfs_mount_dir", ["{cvmfs}", "{cvmfs}/", ""])
def test_osg_binary_is_rebased_on_cvmfs_mount_dir_and_always_proposed(node, cvmfs_mount_dir):
    environ = node.env(CVMFS_MOUNT_DIR=node.fill(cvmfs_mount_dir), SINGULARITY_BIN="PASS")
    found, _ = discover(node.tmp, environ)
    expected = (str(node.cvmfs.osg_binary) if cvmfs_mount_dir else discovery.OSG_BINARY)
    last = found[-1]
    # absent here, yet proposed last: its rejection says why the node has no OSG runtime
    assert (last.path, last.source, last.priority) == (expected, "OSG CVMFS", 700)


def test_glidein_config_wins_over_the_environment(node):
    environ = node.env(SINGULARITY_BIN=node.dirs["empty"])
    found, _ = discover(node.tmp, environ, config=f"SINGULARITY_BIN {node.dirs['sbin']}\n")
    assert [c.path for c in found if c.priority < 300] == [
        node.fill("{sbin}/apptainer"), node.fill("{sbin}/singularity")]


def test_path_entries_once_each_and_missing_ones_skipped(node):
    path = node.fill("{bin2}:{bin2}/:{tmp}/absent::{bin2}")
    found, _ = discover(node.tmp, node.env(PATH=path, SINGULARITY_BIN="PASS"))
    assert len({c.path for c in found}) == len(found), "each path proposed once"
    assert probed(found, node.tmp) == [
        (node.fill("{bin2}/apptainer"), "apptainer on PATH"),
        (node.fill("{bin2}/singularity"), "singularity on PATH"),
        (str(node.cvmfs.osg_binary), "OSG CVMFS")]


MODULE_INIT = """\
module() {
    [ "$1" = load ] || return 1
    dir="$FAKE_MODULEFILES/$2/bin"
    if [ -d "$dir" ]; then PATH="$dir:$PATH"; export PATH; return 0; fi
    echo "ERROR: Unable to locate a modulefile for '$2'" >&2
    return 1
}
"""


@pytest.fixture
def bash_log(node, monkeypatch) -> Path:
    """A logging ``bash`` first on this process's PATH (which runs the module commands)."""
    log = node.tmp / "bash.log"
    node.fakes.install_script("bash", f'#!/bin/sh\necho "$*" >> {log}\nexec /bin/bash "$@"\n')
    monkeypatch.setenv("PATH", f"{node.fakes.dir}:/usr/bin:/bin")
    return log


@pytest.mark.parametrize("variable", ["MODULESHOME", "LMOD_CMD"])
def test_module_load_where_environment_modules_exist(node, bash_log, variable):
    home = node.tmp / "modules"
    (home / "init").mkdir(parents=True)
    (home / "init" / "bash").write_text(MODULE_INIT)
    provided = node.fakes.install_runtime(
        "singularity", directory=node.tmp / "modulefiles" / "singularitypro" / "bin")
    # LMOD_CMD=<home>/libexec/lmod: the init script is found beside it
    value = str(home) if variable == "MODULESHOME" else str(home / "libexec" / "lmod")
    environ = node.env(**{variable: value, "FAKE_MODULEFILES": str(node.tmp / "modulefiles"),
                          "PATH": f"{node.fakes.dir}:/usr/bin:/bin", "SINGULARITY_BIN": "PASS"})
    found, context = discover(node.tmp, environ)
    modules = [(c.path, c.source) for c in found if c.source.startswith("module")]
    assert modules == [(str(provided), "module load singularitypro")]
    assert all(600 <= c.priority < 700 for c in found if c.source.startswith("module"))
    assert any("module load singularity:" in e.message for e in context.trace)
    assert bash_log.read_text().count("module load") == 2


def test_no_module_command_without_environment_modules(node, bash_log):
    found, context = discover(node.tmp, node.env())
    assert not bash_log.exists(), "bash was run without MODULESHOME/LMOD_CMD"
    assert not [c for c in found if c.source.startswith("module")]
    assert any("module load not tried" in e.message for e in context.trace)
    found, _ = discover(node.tmp, node.env(MODULESHOME=str(node.tmp)), settings={"modules": False})
    assert not bash_log.exists(), "the modules setting turns module load off"


def test_a_stale_cvmfs_hides_nothing_on_path(node, monkeypatch):
    """stat hangs on the CVMFS root (fake stat first on PATH): the PATH runtimes are still
    proposed, within the timeout; the OSG binary is not, and the trace says why."""
    node.fakes.install_stat()
    monkeypatch.setenv("PATH", f"{node.fakes.dir}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_STAT_HANG", node.dirs["cvmfs"])
    started = time.monotonic()
    found, context = discover(node.tmp, node.env(), settings={"timeout": 1})
    assert time.monotonic() - started < 10
    assert probed(found, node.tmp) == [
        (node.fill("{bin2}/apptainer"), "apptainer on PATH"),
        (node.fill("{bin1}/singularity"), "singularity on PATH"),
        (node.fill("{bin2}/singularity"), "singularity on PATH")]
    # not proposed (probing it would hang again), and the trace says why
    assert any(event.message.startswith(f"{node.cvmfs.osg_binary} (OSG CVMFS) not proposed: "
                                        "could not be checked") and "stale CVMFS" in event.message
               for event in context.trace)


VO_PLUGIN = """\
from glidein_plugins import RuntimeCandidate, hookimpl

@hookimpl
def glidein_runtime_discover(context):
    return [RuntimeCandidate(context.environ["VO_RUNTIME"], "my VO", priority={priority})]
"""


@pytest.mark.parametrize(("priority", "winner"), [(50, "vo"), (650, "path")])
def test_a_vo_plugin_adds_a_candidate_where_its_priority_says(node, tmp_path, priority, winner):
    """A site drop-in proposes its own apptainer: with priority 50 it is probed (and wins)
    before the built-in PATH candidates, with 650 only after them."""
    node.cvmfs.install_osg_binary()
    vo_runtime = node.fakes.install_runtime("apptainer", directory=tmp_path / "vo",
                                            mode="fakeroot")
    site = tmp_path / "site"
    site.mkdir()
    (site / "my_vo.py").write_text(VO_PLUGIN.format(priority=priority))
    config = tmp_path / "entry.yaml"
    config.write_text(f"version: 1\ndefaults:\n  plugins:\n    directories: [{site}]\n")
    work = make_work_dir(tmp_path / "work", {"GLIDEIN_Singularity_Use": "REQUIRED"})
    environ = node.env(VO_RUNTIME=str(vo_runtime), SINGULARITY_BIN="PASS",
                       SINGULARITY_IMAGES_DICT=node.cvmfs.images_dict("rhel9"))
    proc = run_cli(["setup", "--config", str(config), "glidein_config"], work, environ)
    result = glidein_result(proc, work)
    assert result.exit_code == 0, proc.stdout
    expected = str(vo_runtime) if winner == "vo" else node.fill("{bin2}/apptainer")
    assert result.config["SINGULARITY_PATH"] == expected
    executed = {call[0] for call in node.fakes.calls()}
    assert executed == {expected}, "the first candidate that works is the only one run"
