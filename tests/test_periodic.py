"""Periodic re-validation as the startd runs it: a real setup on a fake node (fake runtime, fake
CVMFS), then ``glidein-plugins periodic`` (and ``hooks/glidein_plugins_periodic.sh``) as real
processes in a directory of their own, with an absolute glidein_config path, as GlideinWMS's
``script_wrapper.sh`` runs a periodic script. Every output line is read by HTCondor's ClassAd
parser (``classad2``), line by line and as the startd reads the whole output (an old-syntax ad);
the node then breaks between setup and the periodic run in the ways nodes break."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import (
    IS_PYPY,
    ROOT,
    FakeCvmfs,
    GlideinResult,
    glidein_result,
    make_work_dir,
    run_cli,
    startd_values,
)
from test_hooks_launcher import make_package
from test_native import fake_node

LINE = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*) = (?P<value>\S.*)\Z")
REPO = "HAS_CVMFS_singularity_opensciencegrid_org"
HOOK = Path("hooks", "glidein_plugins_periodic.sh")
# what the hook needs from PATH (timeout is optional, used when present)
TOOLS = ("cat", "cut", "date", "grep", "mktemp", "mv", "rm", "sed", "tail", "timeout", "tr",
         "stat")  # stat: for the package itself


class Node:
    """A glidein work dir after a successful PREFERRED setup on the fake node."""

    def __init__(self, tmp_path: Path, cvmfs: FakeCvmfs, reader: Reader) -> None:
        self.cvmfs = cvmfs
        self.reader = reader
        self.runtime = cvmfs.bin.install_runtime("apptainer")
        self.work = make_work_dir(tmp_path / "work", {
            "GLIDEIN_Singularity_Use": "PREFERRED",
            "SINGULARITY_IMAGES_DICT": cvmfs.images_dict("rhel9")})
        self.cron_dir = tmp_path / "cron"  # script_wrapper.sh runs us in a temporary dir
        self.cron_dir.mkdir()
        self.setup = glidein_result(
            run_cli(["setup", "glidein_config", "entry"], self.work, cvmfs.env()), self.work)
        assert self.setup.exit_code == 0, self.setup.stdout

    @property
    def glidein_config(self) -> Path:
        return self.work / "glidein_config"

    def add_config(self, **values: str) -> None:
        """Values added to glidein_config after setup (as a later script would)."""
        with self.glidein_config.open("a") as config:
            config.write("".join(f"{key} {value}\n" for key, value in values.items()))

    def break_runtime(self, **config: object) -> None:
        """Replace the proven binary by a fake runtime configured with ``config``."""
        self.cvmfs.bin.install_runtime("apptainer", **config)  # type: ignore[arg-type]

    def forget_probe(self) -> None:
        """Make the probe cache stale: the next re-check runs the full probe."""
        (self.work / ".glidein_plugins" / "probe_cache.json").unlink()

    def periodic(self, *args: str, env: dict[str, str] | None = None
                 ) -> tuple[dict[str, object], subprocess.CompletedProcess]:
        """``glidein-plugins periodic /abs/glidein_config main ARGS`` as the startd runs it."""
        proc = run_cli(["periodic", str(self.glidein_config), "main", *args], self.cron_dir,
                       self.cvmfs.env(**(env or {})))
        return self.reader.read(proc, self.cron_dir), proc


LITERAL = re.compile(r'True|False|undefined|-?[0-9]+|"[^"\\]*"')  # what the script prints


class Reader:
    """Reads what a startd cron job adds to the machine ad: exit 0; one ``NAME = value`` per
    line, each name once; an OK result XML in the cwd. Values are read by HTCondor's ClassAd
    parser (line by line, then the whole output as the startd does: an old-syntax ad); on PyPy,
    which has no HTCondor bindings, by a strict reader of the few literal forms the script
    prints. ``undefined`` reads as None."""

    def __init__(self, classad2) -> None:
        self.classad2 = classad2

    def read(self, proc: subprocess.CompletedProcess, cwd: Path) -> dict[str, object]:
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr
        found: dict[str, object] = {}
        for line in proc.stdout.splitlines():
            match = LINE.match(line)
            assert match and match.group("name") not in found, line
            found[match.group("name")] = self.value(match.group("value"))
        root = ET.fromstring((cwd / "otrb_output.xml").read_text())
        assert root.findtext("result/status") == "OK"
        if self.classad2 is not None:
            ad = self.classad2.parseOne(proc.stdout, self.classad2.ParserType.Old)
            assert {name: self.plain(ad.eval(name)) for name in found} == found
        return found

    def value(self, text: str) -> object:
        if self.classad2 is None:
            assert LITERAL.fullmatch(text), text
            if text in ("True", "False", "undefined"):
                return {"True": True, "False": False, "undefined": None}[text]
            return text[1:-1] if text.startswith('"') else int(text)
        value = self.classad2.ExprTree(text).eval()
        assert not (isinstance(value, self.classad2.Value)
                    and value == self.classad2.Value.Error), text
        return self.plain(value)

    def plain(self, value: object) -> object:
        return None if isinstance(value, self.classad2.Value) else value

    def matches_container_jobs(self, setup: GlideinResult, periodic: dict[str, object]) -> bool:
        """A container job's requirements against the machine ad: setup's attributes with the
        periodic lines over them (a startd cron job with prefix="NOPREFIX")."""
        if self.classad2 is None:
            return periodic.get("HAS_SINGULARITY", setup.config["HAS_SINGULARITY"] == "True") \
                is True
        machine = self.classad2.ClassAd()
        for key, value in {**startd_values(setup, self.classad2), **periodic}.items():
            machine[key] = self.classad2.Value.Undefined if value is None else value
        job = self.classad2.ClassAd({"SingularityImage": "/cvmfs/x/img"})
        return bool(self.classad2.ExprTree("TARGET.HAS_SINGULARITY == True").eval(job, machine))


def make_reader() -> Reader:
    if IS_PYPY:
        return Reader(None)
    import classad2  # noqa: PLC0415 - required off PyPy

    return Reader(classad2)


@pytest.fixture
def reader() -> Reader:
    return make_reader()


@pytest.fixture
def node(tmp_path: Path, fake_cvmfs: FakeCvmfs, reader: Reader) -> Node:
    return Node(tmp_path, fake_cvmfs, reader)


@pytest.fixture(scope="module")
def healthy_node(tmp_path_factory: pytest.TempPathFactory) -> Node:
    """A node the tests only read (the shell launcher's): one setup for all of them."""
    base = tmp_path_factory.mktemp("healthy")
    return Node(base, fake_node(base), make_reader())


# ---------------------------------------------------------------------------------------------


def test_a_healthy_node_passes_from_the_probe_cache(node: Node) -> None:
    ad, proc = node.periodic()
    assert ad["HAS_SINGULARITY"] is True
    for check in ("RUNTIME", "CVMFS", "DISK", "PERIODIC"):
        assert ad[f"GLIDEIN_PLUGINS_{check}_OK"] is True, proc.stdout
        assert ad[f"GLIDEIN_PLUGINS_{check}_REASON"] is None
    assert ad[REPO] is True
    assert isinstance(ad["GLIDEIN_PLUGINS_DISK_FREE_MB"], int)
    assert abs(int(str(ad["GLIDEIN_PLUGINS_PERIODIC_TIME"])) - time.time()) < 600
    assert node.reader.matches_container_jobs(node.setup, ad)
    # the cache was fresh: the binary was asked for its version, no container was started
    after_setup = [call[1:] for call in node.cvmfs.bin.calls(node.runtime)][-1:]
    assert after_setup == [["--version"]]


@pytest.mark.parametrize(("breakage", "reason"), [
    ("removed", "does not exist"),
    ("version", "--version failed"),
    ("exec", "failed its test again"),  # found by the full probe once the cache is stale
    ("nopid", "pid_namespaces worked at setup, not now"),
])
def test_a_runtime_that_breaks_after_setup_stops_container_jobs_matching(
        node: Node, breakage: str, reason: str) -> None:
    if breakage == "removed":
        node.runtime.unlink()
    elif breakage == "version":
        node.runtime.write_text("#!/bin/sh\necho 'error while loading shared libraries' >&2\n"
                                "exit 127\n")
    else:
        node.break_runtime(fail="exit255" if breakage == "exec" else "nopid")
        node.forget_probe()
    ad, _ = node.periodic()
    assert (ad["HAS_SINGULARITY"], ad["GLIDEIN_PLUGINS_RUNTIME_OK"]) == (False, False)
    assert reason in str(ad["GLIDEIN_PLUGINS_RUNTIME_REASON"])
    assert "runtime" in str(ad["HAS_SINGULARITY_REASON"])
    assert ad["GLIDEIN_PLUGINS_PERIODIC_OK"] is False
    assert not node.reader.matches_container_jobs(node.setup, ad)


def test_a_stale_cache_is_reprobed_and_a_working_runtime_passes(node: Node) -> None:
    node.forget_probe()
    ad, _ = node.periodic()
    assert ad["HAS_SINGULARITY"] is True
    assert [call for call in node.cvmfs.bin.exec_calls(node.runtime)
            if call[-2:] == ["cat", "/proc/self/uid_map"]][1:]  # proven again
    assert (node.work / ".glidein_plugins" / "probe_cache.json").is_file()  # and cached again


@pytest.mark.parametrize("hang", ["runtime", "cvmfs"])
def test_a_hanging_runtime_or_cvmfs_mount_costs_the_budget_not_a_hang(
        node: Node, hang: str) -> None:
    env = {}
    if hang == "runtime":
        node.break_runtime(fail="hang")
    else:
        node.cvmfs.bin.install_stat()
        env["FAKE_STAT_HANG"] = str(node.cvmfs.root / "singularity.opensciencegrid.org")
    started = time.monotonic()
    ad, _ = node.periodic("--budget", "3", env=env)
    assert time.monotonic() - started < 30  # the budget, plus Python's start (generous)
    assert ad["HAS_SINGULARITY"] is False
    check = "RUNTIME" if hang == "runtime" else "CVMFS"
    assert ad[f"GLIDEIN_PLUGINS_{check}_OK"] is False
    assert "timed out" in str(ad[f"GLIDEIN_PLUGINS_{check}_REASON"])
    if hang == "cvmfs":
        assert ad[REPO] is False
        assert ad["GLIDEIN_PLUGINS_RUNTIME_OK"] is True  # the binary is elsewhere
    assert left_running(node.cvmfs.bin.dir) == []  # the hung fakes were killed, not left behind


def left_running(path: Path, within: float = 10.0) -> list[str]:
    """Command lines of live processes mentioning ``path`` once ``within`` s have passed
    without them all going (a kill is delivered asynchronously)."""
    deadline = time.monotonic() + within
    while True:
        found = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = (cmdline.parent / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if str(path) in text and state not in ("Z", "X"):
                found.append(text)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_a_configured_repository_that_is_missing_does_not_stop_containers(node: Node) -> None:
    node.add_config(GLIDEIN_PLUGINS_CVMFS_REPOS='cms.cern.ch, ../etc, bad"name\\x',
                    CVMFSReposList="singularity.opensciencegrid.org",
                    GLIDEIN_CVMFS_REPOS="atlas.cern.ch:singularity.opensciencegrid.org")
    ad, _ = node.periodic()
    assert (ad["HAS_CVMFS_cms_cern_ch"], ad[REPO]) == (False, True)
    assert ad["HAS_CVMFS_atlas_cern_ch"] is False  # GlideinWMS's list, as the cvmfs plugin reads it
    assert ad["GLIDEIN_PLUGINS_CVMFS_OK"] is False
    reason = str(ad["GLIDEIN_PLUGINS_CVMFS_REASON"])
    assert "cms.cern.ch does not exist" in reason
    assert "../etc is not a CVMFS repository name" in reason
    assert "bad`name/x" in reason  # a quote or backslash never reaches a ClassAd string
    assert ad["HAS_SINGULARITY"] is True  # no image, runtime or bind lies in those


def test_too_little_disk_for_the_image_cache_stops_containers(node: Node) -> None:
    node.add_config(GLIDEIN_PLUGINS_PERIODIC_MIN_FREE_MB=str(1 << 40))
    ad, _ = node.periodic()
    assert (ad["HAS_SINGULARITY"], ad["GLIDEIN_PLUGINS_DISK_OK"]) == (False, False)
    assert "less than" in str(ad["GLIDEIN_PLUGINS_DISK_REASON"])
    assert isinstance(ad["GLIDEIN_PLUGINS_DISK_FREE_MB"], int)


def test_without_containers_at_setup_has_singularity_is_left_alone(
        tmp_path: Path, fake_cvmfs: FakeCvmfs, reader: Reader) -> None:
    work = make_work_dir(tmp_path / "work", {"GLIDEIN_Singularity_Use": "NEVER"})
    assert run_cli(["setup", "glidein_config"], work, fake_cvmfs.env()).returncode == 0
    proc = run_cli(["periodic", str(work / "glidein_config")], tmp_path, fake_cvmfs.env())
    ad = reader.read(proc, tmp_path)
    assert "HAS_SINGULARITY" not in ad and "GLIDEIN_PLUGINS_RUNTIME_OK" not in ad
    assert ad["GLIDEIN_PLUGINS_PERIODIC_OK"] is True


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_an_unreadable_setup_state_means_no_containers(node: Node, damage: str) -> None:
    state = Path(str(node.setup.config["GLIDEIN_PLUGINS_STATE"]))
    if damage == "corrupt":
        state.write_text('{"version": 1, "entry": ')
    else:
        state.unlink()
    ad, _ = node.periodic()
    assert ad["HAS_SINGULARITY"] is False  # the job wrapper could not read it either
    assert str(state) in str(ad["HAS_SINGULARITY_REASON"])
    assert ad["GLIDEIN_PLUGINS_PERIODIC_OK"] is False


def test_even_an_internal_error_gives_valid_lines_and_exit_0(tmp_path: Path,
                                                             reader: Reader) -> None:
    proc = run_cli(["periodic", str(tmp_path / "no" / "glidein_config")], tmp_path)
    ad = reader.read(proc, tmp_path)
    assert ad["GLIDEIN_PLUGINS_PERIODIC_OK"] is False
    assert "glidein_config does not exist" in str(ad["GLIDEIN_PLUGINS_PERIODIC_REASON"])


# --- the shell launcher ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_package(tmp_path_factory.mktemp("untarred") / "glidein_plugins_pkg")


def tools_dir(path: Path) -> Path:
    path.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        if found:
            (path / tool).symlink_to(found)
    return path


def run_hook(package: Path, node: Node, shell: str, env: dict[str, str]
             ) -> subprocess.CompletedProcess:
    program, *args = shell.split()
    return subprocess.run(
        [shutil.which(program) or program, *args, str(package / HOOK),
         str(node.glidein_config), "main"],
        cwd=node.cron_dir, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=90)


@pytest.mark.parametrize("shell", ["dash", "busybox sh", "bash"])
@pytest.mark.parametrize("python", ["real", "none"])
def test_the_hook_prints_the_lines_with_or_without_python(
        package: Path, healthy_node: Node, tmp_path: Path, shell: str, python: str) -> None:
    if not shutil.which(shell.split(maxsplit=1)[0]):
        pytest.skip(f"{shell} is not installed")
    node = healthy_node
    tools = tools_dir(tmp_path / "tools")
    env = node.cvmfs.env(PATH=f"{node.cvmfs.bin.dir}:{tools}",
                         GLIDEIN_PLUGINS_PYTHON=sys.executable if python == "real" else "",
                         GLIDEIN_PLUGINS_PYTHON_CANDIDATES="" if python == "none" else "python3")
    proc = run_hook(package, node, shell, env)
    ad = node.reader.read(proc, node.cron_dir)
    if python == "real":
        assert (ad["HAS_SINGULARITY"], ad["GLIDEIN_PLUGINS_PERIODIC_OK"]) == (True, True)
    else:  # setup published True: without Python the wrapper cannot work either
        assert (ad["HAS_SINGULARITY"], ad["GLIDEIN_PLUGINS_PERIODIC_OK"]) == (False, False)
        assert "no Python 3.9 or newer" in str(ad["GLIDEIN_PLUGINS_PERIODIC_REASON"])
    assert not list(node.cron_dir.glob(".glidein_plugins_periodic*"))


def test_the_hook_reports_a_python_without_the_dependencies(
        tmp_path: Path, healthy_node: Node) -> None:
    node = healthy_node
    package = make_package(tmp_path / "pkg")
    (package / "pluggy.py").write_text("raise ImportError('no pluggy on this node')\n")
    env = node.cvmfs.env(PATH=f"{tools_dir(tmp_path / 'tools')}",
                         GLIDEIN_PLUGINS_PYTHON=sys.executable)
    ad = node.reader.read(run_hook(package, node, "dash", env), node.cron_dir)
    assert ad["GLIDEIN_PLUGINS_PERIODIC_OK"] is False
    assert "no pluggy on this node" in str(ad["GLIDEIN_PLUGINS_PERIODIC_REASON"])


def test_the_hook_is_posix_sh() -> None:
    for shell in ("dash", "bash"):
        if shutil.which(shell):
            proc = subprocess.run([shell, "-n", str(ROOT / HOOK)], capture_output=True,
                                  text=True, timeout=30)
            assert proc.returncode == 0, proc.stderr
    if shutil.which("shellcheck"):
        proc = subprocess.run(["shellcheck", "-s", "sh", str(ROOT / HOOK)],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout
    text = (ROOT / HOOK).read_text()
    assert text.startswith("#!/bin/sh\n") and not re.search(r"\beval\b", text)



def test_a_runtime_proven_with_a_test_image_passes_from_the_probe_cache(
        tmp_path: Path, fake_cvmfs: FakeCvmfs, reader: Reader) -> None:
    """No usable image (issue 14): setup proved the runtime with GlideinWMS's test image; the
    re-check finds that probe in the cache (same image), so no container is started again."""
    runtime = fake_cvmfs.bin.install_runtime("apptainer")
    work = make_work_dir(tmp_path / "work", {"GLIDEIN_Singularity_Use": "PREFERRED",
                                             "SINGULARITY_IMAGES_DICT": "rhel9:/cvmfs/none/el9"})
    setup = glidein_result(run_cli(["setup", "glidein_config", "entry"], work,
                                   fake_cvmfs.env()), work)
    assert setup.config["GLIDEIN_SINGULARITY_TEST_IMAGE"] == "oras://ghcr.io/apptainer/alpine:latest"
    cron = tmp_path / "cron"
    cron.mkdir()
    ad = reader.read(run_cli(["periodic", str(work / "glidein_config"), "main"], cron,
                             fake_cvmfs.env()), cron)
    assert ad["HAS_SINGULARITY"] is True and ad["GLIDEIN_PLUGINS_RUNTIME_OK"] is True
    assert [call[1:] for call in fake_cvmfs.bin.calls(runtime)][-1:] == [["--version"]]
