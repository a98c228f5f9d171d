"""``paths``: bounded looks at many paths through real ``stat`` processes, grouped by mount so
that a stale one (the fake ``stat`` hanging on it) hides nothing elsewhere."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glidein_plugins.config.model import EntryConfig
from glidein_plugins.node import commands, paths
from glidein_plugins.protocol.glideinwms.glidein_config import parse
from glidein_plugins.spec.context import Context, Deadline


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, str]:
    """Paths of every kind: name -> path."""
    (tmp_path / "dir with space").mkdir()
    (tmp_path / "prog").write_text("#!/bin/sh\n")
    (tmp_path / "prog").chmod(0o750)
    (tmp_path / "data|pipe").write_text("x")
    (tmp_path / "data|pipe").chmod(0o640)
    (tmp_path / "-dash").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "prog")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    return {
        "dir": str(tmp_path / "dir with space"), "prog": str(tmp_path / "prog"),
        "pipe": str(tmp_path / "data|pipe"), "dash": str(tmp_path / "-dash"),
        "link": str(tmp_path / "link"), "dangling": str(tmp_path / "dangling"),
        "missing": str(tmp_path / "missing"), "under_file": str(tmp_path / "prog" / "x"),
        "device": "/dev/null",
    }


@pytest.mark.parametrize(("name", "kind", "mode", "executable"), [
    ("dir", "directory", 0o755, False),
    ("prog", "file", 0o750, True),
    ("pipe", "file", 0o640, False),
    ("dash", "file", None, False),
    ("link", "file", 0o750, True),  # stat -L: the target
    ("dangling", "missing", 0, False),
    ("missing", "missing", 0, False),
    ("under_file", "missing", 0, False),  # "Not a directory" means it is not there either
    ("device", "other", None, False),
])
def test_each_kind_of_path(tree, name, kind, mode, executable):
    info = paths.inspect(list(tree.values()), 10)[tree[name]]
    assert (info.path, info.kind, info.executable) == (tree[name], kind, executable)
    assert info.exists == (kind in ("file", "directory", "other"))
    if mode is not None and kind != "directory":
        assert info.mode == mode
    assert bool(info.reason) == (kind == "missing")


def test_order_duplicates_and_odd_names(tree):
    wanted = [tree["missing"], tree["prog"], tree["missing"], "", "/bad\nname"]
    found = paths.inspect(wanted, 10)
    assert list(found) == [tree["missing"], tree["prog"], "/bad\nname"]
    assert found["/bad\nname"].kind == "unknown" and "newline" in found["/bad\nname"].reason
    assert paths.inspect([], 10) == {}


@pytest.mark.parametrize(("info", "why"), [
    (paths.PathInfo("/x", "missing", reason="does not exist"), "/x does not exist"),
    (paths.PathInfo("/x", "unknown", reason="could not be checked: stat: timed out"),
     "/x could not be checked: stat: timed out"),
    (paths.PathInfo("/x", "directory", 0o755), "/x is a directory, not a program"),
    (paths.PathInfo("/x", "file", 0o644), "/x is not executable (mode 644)"),
    (paths.PathInfo("/x", "file", 0o755), ""),
])
def test_describe_says_why_a_path_is_not_a_program(info, why):
    assert paths.describe(info) == why


def test_mount_points_are_read_with_their_escapes(tmp_path):
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
        "40 22 0:44 / /cvmfs/oasis.opensciencegrid.org ro - fuse cvmfs2 ro\n"
        "41 22 0:45 / /mnt/with\\040space rw - nfs srv:/x rw\n")
    assert paths.mount_points(str(mountinfo)) == [
        "/", "/cvmfs/oasis.opensciencegrid.org", "/mnt/with space"]
    assert paths.mount_points(str(tmp_path / "absent")) == []


POINTS = ["/", "/cvmfs/oasis.opensciencegrid.org", "/mnt/with space", "/home"]


@pytest.mark.parametrize(("path", "split_under", "mount"), [
    ("/cvmfs/oasis.opensciencegrid.org/mis/bin/x", (), "/cvmfs/oasis.opensciencegrid.org"),
    ("/cvmfs/oasis.opensciencegrid.orgX/y", (), "/"),  # a prefix is not a parent
    ("/mnt/with space/a", (), "/mnt/with space"),
    ("/home", (), "/home"),
    ("/usr/bin/apptainer", (), "/"),
    ("/srv/cvmfs/repo.example.org/x/y", ("/srv/cvmfs/",), "/srv/cvmfs/repo.example.org"),
    ("/srv/cvmfs", ("/srv/cvmfs",), "/"),
    ("relative/apptainer", (), ""),
])
def test_mount_of_a_path(path, split_under, mount):
    assert paths.mount_of(path, POINTS, split_under) == mount


COMPONENTS = st.sampled_from(["", "cvmfs", "repo.org", "data", "hadoop", "x", ".", ".."])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(COMPONENTS, max_size=4).map(lambda parts: "/" + "/".join(parts)),
                max_size=30),
       st.sampled_from([(), ("/cvmfs",), ("/cvmfs/",)]))
def test_grouping_by_mount_is_mount_of_for_every_path(found, split_under):
    """The per-parent shortcut never changes a path's group (mount points and repositories
    under a split root included)."""
    points = [*POINTS, "/cvmfs/repo.org", "/data/x"]
    expected: dict[str, list[str]] = {}
    for path in found:
        expected.setdefault(paths.mount_of(path, points, split_under), []).append(path)
    assert paths.by_mount(found, points, split_under) == expected


def test_a_stale_mount_hides_only_its_own_paths(tmp_path, fake_bin_dir, tree):
    """The fake stat hangs on the stale CVMFS repository: its paths are unknown, with the
    reason, after the timeout; paths elsewhere are described as usual."""
    fake_bin_dir.install_stat()
    root = tmp_path / "cvmfs"
    stale = root / "stale.example.org"
    (root / "fine.example.org").mkdir(parents=True)
    run = functools.partial(commands.run, env=fake_bin_dir.env(FAKE_STAT_HANG=str(stale)))
    started = time.monotonic()
    found = paths.inspect([f"{stale}/bin/x", tree["prog"], str(root / "fine.example.org"),
                           f"{stale}/y"], 1.0, run, split_under=[str(root)])
    assert time.monotonic() - started < 10
    for path in (f"{stale}/bin/x", f"{stale}/y"):
        assert found[path].kind == "unknown"
        assert "timed out" in found[path].reason and paths.STALE_HINT in found[path].reason
    assert found[tree["prog"]].executable
    assert found[str(root / "fine.example.org")].kind == "directory"


def context_with(tmp_path: Path, budget: float) -> Context:
    return Context(EntryConfig("TEST"), parse(""), tmp_path, Deadline(budget), {})


def test_looks_end_before_the_budget_does(tmp_path):
    context = context_with(tmp_path, 2.0)
    assert context.timeout_for( 60) < 2.0 - 0.15
    assert context.timeout_for( 1.0) == 1.0
    spent = context_with(tmp_path, 0.01)
    time.sleep(0.05)
    assert spent.timeout_for( 60) == 0
    result = spent.quiet_run(["true"], timeout=5)
    assert not result.ok and "budget exhausted" in result.reason
    assert spent.trace == []  # quiet: the caller explains


def test_quiet_runner_runs_within_the_budget(tmp_path):
    context = context_with(tmp_path, 30)
    assert context.quiet_run(["true"], timeout=5).ok
    result = context.quiet_run(["false"], timeout=5)
    assert result.returncode == 1 and context.trace == []
