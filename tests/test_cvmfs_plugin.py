"""The built-in ``cvmfs`` plugin on real directory trees: OSG's attribute names, repositories
present, missing, stale or misnamed, revisions read from a real ``user.revision`` xattr, what a
setup publishes (checked with HTCondor's parser), and no process at all when none is configured."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import (
    ROOT,
    GlideinResult,
    bare_node_env,
    glidein_result,
    make_work_dir,
    startd_values,
)

from glidein_plugins.builtin import cvmfs as plugin
from glidein_plugins.config import factory_config
from glidein_plugins.config.model import EntryConfig, Setting
from glidein_plugins.engine.registry import BUILTINS
from glidein_plugins.errors import FailureType, GlideinFailure
from glidein_plugins.node import commands
from glidein_plugins.protocol.glideinwms import glidein_config
from glidein_plugins.spec.context import Context, Deadline

WHERE = "osg.yaml:7"  # where the tests' settings claim to come from
KEY = "GLIDEIN_CVMFS_REPOS"


def make_context(tmp_path: Path, values: dict[str, str] | None = None,
                 **settings: object) -> Context:
    """A context whose glidein_config holds ``values`` (one per line, in order) and whose entry
    has ``settings`` for the plugin, written at ``WHERE``."""
    text = "".join(f"{key} {value}\n" for key, value in (values or {}).items())
    entry = EntryConfig("TEST_ENTRY", settings={"cvmfs": {
        key: Setting(value, WHERE) for key, value in settings.items()}})
    return Context(entry, glidein_config.parse(text), tmp_path, Deadline(60), {})


def published(context: Context) -> dict[str, tuple[str, str]]:
    """``name -> (value, type)`` of what the plugin contributes."""
    return {attribute.name: (attribute.value, attribute.type.value)
            for attribute in plugin.glidein_attributes_contribute(context)}


def warnings(context: Context) -> list[str]:
    return [event.message for event in context.trace if event.level == "warning"]


def make_repos(root: Path, *names: str) -> Path:
    for name in names:
        (root / name).mkdir(parents=True)
    return root


def set_revision(directory: Path, value: bytes) -> bool:
    """Give ``directory`` CVMFS's ``user.revision`` xattr; False where the filesystem refuses
    user extended attributes."""
    try:
        os.setxattr(directory, plugin.XATTR, value)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EPERM, errno.EACCES):
            return False
        raise
    return True


# -- names ----------------------------------------------------------------------------------------


def test_registered_as_a_builtin_enabled_by_default():
    assert BUILTINS["cvmfs"] == ("glidein_plugins.builtin.cvmfs", True)


@pytest.mark.parametrize("name, suffix", [
    ("oasis.opensciencegrid.org", "oasis_opensciencegrid_org"),
    ("sw-nightlies.hsf.org", "sw_nightlies_hsf_org"),
    ("cvmfs-config.cern.ch", "cvmfs_config_cern_ch"),
    ("4x.example.org", "4x_example_org"),
])
def test_osg_attribute_names(name, suffix):
    assert plugin.name_problem(name) == ""
    assert plugin.attribute_suffix(name) == suffix


@pytest.mark.parametrize("name", [
    "cms", "bad_name.org", "-x.org", "x-.org", "a..b", ".a.b", "a.b.", "/cvmfs/cms.cern.ch",
    "cms.cern.ch/", "a.b c", "a$(X).org", "a'b.org", "ümlaut.org", "x" * 64 + ".org",
    ".".join(["abcdefgh"] * 29),  # 260 characters
])
def test_what_is_not_a_repository_name(name):
    assert "is not a CVMFS repository name" in plugin.name_problem(name)


# -- availability ---------------------------------------------------------------------------------


def test_present_missing_and_not_a_directory(tmp_path):
    root = make_repos(tmp_path / "cvmfs", "oasis.opensciencegrid.org", "sw-nightlies.hsf.org")
    (root / "file.example.org").write_text("not a repository\n")
    context = make_context(
        tmp_path, {"CVMFS_MOUNT_DIR": f"{root}/", KEY: "sw-nightlies.hsf.org:missing.example.org"},
        repositories=["oasis.opensciencegrid.org", "file.example.org"])
    assert published(context) == {
        "HAS_CVMFS_oasis_opensciencegrid_org": ("True", "C"),
        "HAS_CVMFS_file_example_org": ("False", "C"),
        "HAS_CVMFS_file_example_org_REASON": (
            f"{root}/file.example.org does not exist or is not a directory (not mounted)", "S"),
        "HAS_CVMFS_sw_nightlies_hsf_org": ("True", "C"),
        "HAS_CVMFS_missing_example_org": ("False", "C"),
        "HAS_CVMFS_missing_example_org_REASON": (
            f"{root}/missing.example.org does not exist or is not a directory (not mounted)", "S"),
    }
    assert warnings(context) == [
        f"file.example.org ({WHERE}: settings.cvmfs.repositories): "
        f"HAS_CVMFS_file_example_org=False: {root}/file.example.org does not exist or is not "
        "a directory (not mounted)",
        f"missing.example.org (glidein_config:2: {KEY}): HAS_CVMFS_missing_example_org=False: "
        f"{root}/missing.example.org does not exist or is not a directory (not mounted)",
    ]


def test_a_stale_repository_is_false_and_hides_no_other(tmp_path, fake_bin_dir, monkeypatch):
    root = make_repos(tmp_path / "cvmfs", "stale.example.org", "good.example.org")
    fake_bin_dir.install_stat()
    monkeypatch.setenv("PATH", f"{fake_bin_dir.dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_STAT_HANG", str(root / "stale.example.org"))
    context = make_context(tmp_path, {"CVMFS_MOUNT_DIR": str(root)},
                           repositories=["stale.example.org", "good.example.org"], timeout=2)
    started = time.monotonic()
    found = published(context)
    assert time.monotonic() - started < 15  # the timeout is 2 s; generous for a loaded machine
    assert found["HAS_CVMFS_stale_example_org"] == ("False", "C")
    assert found["HAS_CVMFS_good_example_org"] == ("True", "C")
    reason = found["HAS_CVMFS_stale_example_org_REASON"][0]
    assert reason.startswith(f"{root}/stale.example.org could not be checked: stat: timed out")
    [warning] = warnings(context)
    assert warning.startswith("stale.example.org (")
    assert "stale CVMFS or network mount?" in warning


def test_the_default_root_is_slash_cvmfs(tmp_path):
    repo = "no-such-repo.glidein-plugins.invalid"
    context = make_context(tmp_path, repositories=[repo])
    assert published(context)["HAS_CVMFS_no_such_repo_glidein_plugins_invalid_REASON"][0] == \
        f"/cvmfs/{repo} does not exist or is not a directory (not mounted)"


# -- revisions ------------------------------------------------------------------------------------


def test_the_revision_is_read_from_the_user_revision_xattr(tmp_path):
    values = {"dune.opensciencegrid.org": b"1105", "spaced.example.org": b" 42\n",
              "zero.example.org": b"0", "word.example.org": b"abc",
              "negative.example.org": b"-5", "huge.example.org": b"9" * 20,
              "none.example.org": None}  # a plain directory: CVMFS over NFS
    root = make_repos(tmp_path / "cvmfs", *values)
    for name, value in values.items():
        if value is not None and not set_revision(root / name, value):
            pytest.skip(f"{tmp_path}'s filesystem refuses user extended attributes")
    context = make_context(tmp_path, {"CVMFS_MOUNT_DIR": str(root)}, repositories=list(values))
    found = published(context)
    revisions = {name: value for name, (value, kind) in found.items() if "REVISION" in name}
    assert revisions == {"CVMFS_dune_opensciencegrid_org_REVISION": "1105",
                         "CVMFS_spaced_example_org_REVISION": "42",
                         "CVMFS_zero_example_org_REVISION": "0"}
    assert {kind for name, (_, kind) in found.items() if "REVISION" in name} == {"I"}
    assert all(found[f"HAS_CVMFS_{plugin.attribute_suffix(name)}"] == ("True", "C")
               for name in values)
    assert sorted(warnings(context)) == [
        f"{name}: available at {root}/{name}, revision {shown} is not a non-negative integer: "
        "not advertised" for name, shown in (("huge.example.org", repr("9" * 20)),
                                             ("negative.example.org", "'-5'"),
                                             ("word.example.org", "'abc'"))]


def test_a_reader_killed_midway_keeps_the_answers_before_it():
    roots = ["/c/a.org/.", "/c/b.org/.", "/c/c.org/.", "/c/d.org/."]
    killed = commands.CommandResult(("python3",), -9, "1105\0!No data available\0", "", 2.0,
                                    timed_out=True)
    read = plugin.parse_revisions(roots, killed)
    assert read.answers == {roots[0]: "1105", roots[1]: "!No data available"}
    assert read.hung == roots[2]  # the one it was reading: advertised as unavailable
    assert plugin._unavailable(roots[2], plugin.paths.PathInfo(roots[2], "directory"), read) == \
        f"/c/c.org: reading its revision did not finish: {read.reason} (stale CVMFS or " \
        "network mount?)"
    assert plugin._revision(read.answers.get(roots[3]), read.reason) == (
        None, f"revision not read: {read.reason}", "warning")  # not reached: no revision


# -- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize("settings, message", [
    ({"repositories": ["oasis.opensciencegrid.org", "bad_name"]},
     f"{WHERE}: settings.cvmfs.repositories: 'bad_name' is not a CVMFS repository name"),
    ({"repositories": "oasis.opensciencegrid.org"},
     f"{WHERE}: settings.cvmfs.repositories: expected a list of strings"),
    ({"timeout": 0}, f"{WHERE}: settings.cvmfs.timeout: expected a positive number of seconds"),
    ({"repos": []}, f"{WHERE}: settings.cvmfs.repos: unknown setting (expected one of: "
                    "repositories, timeout)"),
])
def test_a_wrong_setting_is_a_config_failure_naming_where(tmp_path, settings, message):
    with pytest.raises(GlideinFailure) as caught:
        plugin.glidein_attributes_contribute(make_context(tmp_path, **settings))
    assert caught.value.failure_type is FailureType.CONFIG
    assert caught.value.message.startswith(message), caught.value.message


def test_glidein_cvmfs_repos_each_once_a_bad_name_left_out_with_a_warning(tmp_path):
    root = make_repos(tmp_path / "cvmfs", "a.example.org", "foo-bar.example.org")
    context = make_context(
        tmp_path, {"CVMFS_MOUNT_DIR": str(root),
                   KEY: " a.example.org ::bad_name:foo.bar.example.org:A.example.org:"
                        "foo-bar.example.org:a.example.org"},
        repositories=["foo-bar.example.org"])
    assert published(context) == {"HAS_CVMFS_foo_bar_example_org": ("True", "C"),
                                  "HAS_CVMFS_a_example_org": ("True", "C")}
    where = f"glidein_config:2: {KEY}"
    assert warnings(context) == [
        f"{where}: 'bad_name' is not a CVMFS repository name (a fully qualified name such as "
        "oasis.opensciencegrid.org: letters, digits and inner '-' in dot-separated labels): "
        "not checked",
        f"{where}: foo.bar.example.org would be advertised under the names of "
        f"foo-bar.example.org ({WHERE}: settings.cvmfs.repositories): not checked",
        f"{where}: A.example.org would be advertised under the names of a.example.org "
        f"({where}): not checked",
    ]


def test_the_shipped_osg_entry_names_valid_repositories(tmp_path):
    entry = factory_config.load([ROOT / "factory_configs" / "osg.yaml"]).entry(
        "OSG_EXAMPLE_SITE_ce1")
    context = Context(entry, glidein_config.parse(""), tmp_path, Deadline(60), {})
    repos = plugin.configured(context, plugin.settings(context)["repositories"])
    assert {"oasis.opensciencegrid.org", "singularity.opensciencegrid.org"} <= {
        repo.name for repo in repos}
    assert repos[0].where.endswith("osg.yaml:16: settings.cvmfs.repositories")
    assert context.trace == []


def test_glidein_cvmfs_repos_from_the_environment(tmp_path):
    root = make_repos(tmp_path / "cvmfs", "env.example.org")
    context = make_context(tmp_path, {"CVMFS_MOUNT_DIR": str(root)})
    context.environ = {KEY: "env.example.org:bad_name"}
    assert published(context) == {"HAS_CVMFS_env_example_org": ("True", "C")}
    assert warnings(context)[0].startswith(f"environment: {KEY}: 'bad_name' is not")


# -- a setup, as GlideinWMS runs it ----------------------------------------------------------------

# Runs `glidein-plugins setup` in this interpreter with an audit hook recording every process
# it starts (argv as JSON lines in argv[1]): what the package runs, seen from outside it.
_AUDITED_SETUP = """
import json, sys
log = open(sys.argv[1], "w")
def audit(event, args):
    if event == "subprocess.Popen":
        log.write(json.dumps([str(arg) for arg in args[1]]) + "\\n")
        log.flush()
sys.addaudithook(audit)
from glidein_plugins.cli import main
sys.exit(main(sys.argv[2:]))
"""


def audited_setup(work: Path, env: dict[str, str], *args: str
                  ) -> tuple[GlideinResult, list[list[str]]]:
    """``glidein-plugins setup glidein_config entry ARGS`` in ``work``: what it left, and the
    argv of every process it started."""
    log = work.parent / f"{work.name}.popen"
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    proc = subprocess.run(
        [sys.executable, "-c", _AUDITED_SETUP, str(log), "setup", "glidein_config", "entry",
         *args], cwd=work, env=environ, stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=60)
    return glidein_result(proc, work), [json.loads(line) for line in log.read_text().splitlines()]


def test_setup_publishes_the_repositories_for_htcondor(tmp_path, classad2):
    root = make_repos(tmp_path / "cvmfs", "oasis.opensciencegrid.org", "dune.opensciencegrid.org")
    has_revision = set_revision(root / "dune.opensciencegrid.org", b"1105")
    (tmp_path / "osg.yaml").write_text(
        "version: 1\nentries:\n  TEST_ENTRY:\n    settings:\n      cvmfs:\n"
        "        repositories: [oasis.opensciencegrid.org, missing.example.org, bad_name]\n")
    work = make_work_dir(tmp_path / "work", {
        "GLIDEIN_Singularity_Use": "NEVER", "CVMFS_MOUNT_DIR": str(root),
        KEY: "dune.opensciencegrid.org"})
    env = bare_node_env(tmp_path / "bare-node")
    failed, _ = audited_setup(work, env, "--config", str(tmp_path / "osg.yaml"))
    assert (failed.exit_code, failed.failure) == (1, "Config")
    assert failed.detail.startswith(f"cvmfs (glidein_plugins): {tmp_path / 'osg.yaml'}:6: "
                                    "settings.cvmfs.repositories: 'bad_name' is not a CVMFS")
    (tmp_path / "osg.yaml").write_text((tmp_path / "osg.yaml").read_text().replace(
        ", bad_name", ""))
    result, started = audited_setup(work, env, "--config", str(tmp_path / "osg.yaml"))
    assert result.exit_code == 0, result.detail
    names = {"oasis_opensciencegrid_org": True, "missing_example_org": False,
             "dune_opensciencegrid_org": True}
    for suffix, present in names.items():
        assert result.config[f"HAS_CVMFS_{suffix}"] == str(present)
        assert result.condor_vars[f"HAS_CVMFS_{suffix}"] == f"HAS_CVMFS_{suffix} C - + N Y +"
    revision = "CVMFS_dune_opensciencegrid_org_REVISION"
    assert (revision in result.condor_vars) is has_revision
    machine = classad2.ClassAd(startd_values(result, classad2))
    for suffix, present in names.items():
        assert machine.eval(f"HAS_CVMFS_{suffix}") is present
    if has_revision:
        assert result.condor_vars[revision] == f"{revision} I - + N Y +"
        assert machine.eval(revision) == 1105
        for minimum, matches in ((1105, True), (1106, False)):  # a requirement as DUNE jobs'
            requirement = classad2.ExprTree(
                f"HAS_CVMFS_dune_opensciencegrid_org == true && {revision} >= {minimum}")
            assert requirement.eval(machine) is matches
    # one stat per repository, and one reader for the revisions of the two that are there
    stats = [argv for argv in started if argv[0] == "stat"]
    assert sorted(argv[-1] for argv in stats) == sorted(
        f"{root}/{name}/." for name in ("oasis.opensciencegrid.org", "missing.example.org",
                                        "dune.opensciencegrid.org"))
    readers = [argv[argv.index(plugin.SCRIPT) + 1:] for argv in started if plugin.SCRIPT in argv]
    assert readers == [["user.revision", f"{root}/oasis.opensciencegrid.org/.",
                        f"{root}/dune.opensciencegrid.org/."]]


def test_nothing_is_run_or_published_when_no_repository_is_configured(tmp_path):
    env = bare_node_env(tmp_path / "bare-node")
    runs = {}
    for label, disable in (("disabled", "gpus,cvmfs"), ("enabled", "gpus")):
        work = make_work_dir(tmp_path / label, {"GLIDEIN_Singularity_Use": "NEVER",
                                                KEY: " : "})  # blank items name nothing
        runs[label] = audited_setup(work, {**env, "GLIDEIN_PLUGINS_DISABLE": disable})
    (disabled, started_without), (enabled, started_with) = runs["disabled"], runs["enabled"]
    assert enabled.exit_code == disabled.exit_code == 0
    assert started_with == started_without  # not one process more
    assert enabled.condor_vars == disabled.condor_vars
    assert not any(name.startswith(("HAS_CVMFS_", "CVMFS_")) for name in enabled.config)
