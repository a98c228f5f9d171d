"""A fake worker node: fake container runtimes, a stale-mount ``stat``, a fake CVMFS tree.

The fakes are shell scripts shipped in ``glidein_plugins/testing/fakes/`` (read their headers
for every behaviour); ``FakeBin`` installs configured copies of them into a test's bin dir.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FAKES = Path(__file__).resolve().parent / "fakes"
SAFE_PATH = "/usr/bin:/bin"
# every input the runtime plugins read from the environment: blanked unless a test sets it, so
# that the real machine's state (a real apptainer, modules, CVMFS) never leaks into a test
RUNTIME_ENV_KEYS = (
    "GLIDEIN_SINGULARITY_BINARY_OVERRIDE", "SINGULARITY_BIN", "OSG_SINGULARITY_BINARY",
    "CONDOR_DIR", "CVMFS_MOUNT_DIR", "MODULESHOME", "LMOD_CMD", "APPTAINER_CONTAINER",
    "SINGULARITY_CONTAINER", "APPTAINER_BINDPATH", "SINGULARITY_BINDPATH",
    "SINGULARITY_IMAGES_DICT", "SINGULARITY_IMAGE_DEFAULT", "SINGULARITY_IMAGE_DEFAULT6",
    "SINGULARITY_IMAGE_DEFAULT7", "SINGULARITY_IMAGE_RESTRICTIONS", "SINGULARITY_IMAGE_REQUIRED",
    "GWMS_SINGULARITY_IMAGE_DEFAULT", "APPTAINER_TEST_IMAGE",
    "GLIDEIN_SINGULARITY_BINDPATH", "GLIDEIN_SINGULARITY_BINDPATH_DEFAULT",
    "FAKE_RUNTIME_VERSION", "FAKE_RUNTIME_MODE", "FAKE_RUNTIME_FAIL", "FAKE_RUNTIME_DELAY",
    "FAKE_STAT_HANG",
)
# the built-in ``gpus`` plugin blocked: what the real machine's GPUs are never enters a container
# test (a test setting GLIDEIN_PLUGINS_DISABLE itself names ``gpus`` too)
NO_GPU_DETECTION = {"GLIDEIN_PLUGINS_DISABLE": "gpus"}


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def write_executable(path: Path, text: str) -> Path:
    """``text`` written to ``path`` (parents made), mode 0755. Returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


@dataclass
class FakeBin:
    """A bin directory for fake executables, and the log every fake runtime appends to.

    ``install_runtime`` puts a configured copy of ``fakes/apptainer`` (see its header for
    every behaviour) at ``directory/name``; ``install_stat`` puts the stale-mount ``stat`` in
    the bin dir; ``env`` is the environment a test runs the package with: PATH is
    ``<bin dir>:/usr/bin:/bin``, the runtime variables of ``RUNTIME_ENV_KEYS`` are blanked
    unless given, ``FAKE_RUNTIME_LOG`` names ``log``, GPU detection is off (``NO_GPU_DETECTION``:
    these are the container tests; the GPU tests make their own node); ``calls`` reads that log
    back.
    """

    dir: Path
    log: Path

    def install_runtime(self, name: str = "apptainer", *, version: str | None = None,
                        mode: str | None = None, fail: Sequence[str] | str = (),
                        delay: float | None = None,
                        directory: Path | None = None) -> Path:
        """A fake runtime at ``directory/name`` (default: the bin dir), executable.

        ``version`` is its ``--version`` line (e.g. ``"singularity-ce version 3.11.4"``),
        ``mode`` ``privileged``/``fakeroot``/``unprivileged``, ``fail`` the failures to act out
        (``"hang"``, ``["nopid", "ansi"]``, ...), ``delay`` seconds slept before anything.
        These settings are written into the copy, so they win over the environment and two
        copies can behave differently. Returns the path.
        """
        config = {"FAKE_RUNTIME_VERSION": version, "FAKE_RUNTIME_MODE": mode,
                  "FAKE_RUNTIME_FAIL": fail if isinstance(fail, str) else ",".join(fail),
                  "FAKE_RUNTIME_DELAY": None if delay is None else str(delay)}
        lines = "".join(f"{key}={_shell_quote(value)}\n" for key, value in config.items()
                        if value)
        text = (FAKES / "apptainer").read_text().replace("# @FAKE_CONFIG@\n", lines, 1)
        return write_executable((directory or self.dir) / name, text)

    def install_stat(self) -> Path:
        """The fake ``stat`` (hangs on paths under ``FAKE_STAT_HANG``) in the bin dir."""
        return write_executable(self.dir / "stat", (FAKES / "stat").read_text())

    def install_script(self, name: str, text: str, directory: Path | None = None) -> Path:
        """Any executable script (``text`` starts with its ``#!`` line)."""
        return write_executable((directory or self.dir) / name, text)

    # kept for callers of the former private helper
    _write = staticmethod(write_executable)

    def env(self, **values: str) -> dict[str, str]:
        """The environment for a run against the fakes (``values`` set or replace keys)."""
        environ = dict.fromkeys(RUNTIME_ENV_KEYS, "")
        environ.update(PATH=f"{self.dir}:{SAFE_PATH}", FAKE_RUNTIME_LOG=str(self.log),
                       **NO_GPU_DETECTION)
        environ.update(values)
        return environ

    def calls(self, path: Path | str | None = None) -> list[list[str]]:
        """Every logged invocation as ``[binary, arg, ...]`` (only ``path``'s when given)."""
        if not self.log.is_file():
            return []
        found = [line.split("\t") for line in self.log.read_text().splitlines() if line]
        return [call for call in found if path is None or call[0] == str(path)]

    def exec_calls(self, path: Path | str | None = None) -> list[list[str]]:
        """The logged ``exec`` invocations (argv without the binary)."""
        return [call[1:] for call in self.calls(path) if call[1:2] == ["exec"]]


def make_fake_bin(root: Path) -> FakeBin:
    """An empty ``root/bin`` (see ``FakeBin``), its log ``root/fake_runtime.log``."""
    (root / "bin").mkdir(parents=True)
    return FakeBin(root / "bin", root / "fake_runtime.log")


@dataclass
class FakeCvmfs:
    """A CVMFS tree: ``root`` is what ``CVMFS_MOUNT_DIR`` names.

    ``images`` maps ``rhel9``/``rhel8``/``rhel7`` to the OSG image directories
    ``root/singularity.opensciencegrid.org/opensciencegrid/osgvo-elN:latest`` (each holding
    ``srv etc cvmfs tmp bin usr``), ``osg_binary`` is the OSG-distributed runtime
    ``root/oasis.opensciencegrid.org/mis/singularity/bin/singularity`` (a fake runtime, present
    only after ``install_osg_binary``).
    """

    root: Path
    images: dict[str, Path]
    bin: FakeBin

    @property
    def osg_binary(self) -> Path:
        return self.root / "oasis.opensciencegrid.org" / "mis" / "singularity" / "bin" / \
            "singularity"

    def install_osg_binary(self, **config: Any) -> Path:
        """The fake runtime at ``osg_binary`` (``config`` as for ``FakeBin.install_runtime``)."""
        return self.bin.install_runtime("singularity", directory=self.osg_binary.parent,
                                        **config)

    def add_image(self, path: str, subdirs: Sequence[str] = ("srv", "etc", "cvmfs", "tmp",
                                                             "bin", "usr")) -> Path:
        """An (unpacked) image directory at ``root/path`` holding ``subdirs``; returns it."""
        image = self.root / path
        for sub in subdirs:
            (image / sub).mkdir(parents=True, exist_ok=True)
        return image

    def images_dict(self, *platforms: str) -> str:
        """A ``SINGULARITY_IMAGES_DICT`` naming the given platforms' images (all by default)."""
        return ",".join(f"{key}:{self.images[key]}" for key in platforms or self.images)

    def env(self, **values: str) -> dict[str, str]:
        """``FakeBin.env`` with ``CVMFS_MOUNT_DIR`` set to ``root``."""
        return self.bin.env(**{"CVMFS_MOUNT_DIR": str(self.root), **values})


def make_fake_cvmfs(root: Path, fake_bin: FakeBin) -> FakeCvmfs:
    """A CVMFS tree at ``root`` with the three OSG images (see ``FakeCvmfs``)."""
    cvmfs = FakeCvmfs(root, {}, fake_bin)
    for number in (9, 8, 7):
        cvmfs.images[f"rhel{number}"] = cvmfs.add_image(
            f"singularity.opensciencegrid.org/opensciencegrid/osgvo-el{number}:latest")
    root.mkdir(parents=True, exist_ok=True)
    return cvmfs


def bare_node_env(root: Path) -> dict[str, str]:
    """The environment of a node with no container runtime and no image, whatever machine runs
    the tests: PATH is the system directories (plus the empty ``root``), ``CVMFS_MOUNT_DIR`` the
    empty ``root``, every other runtime input of ``RUNTIME_ENV_KEYS`` blank, GPU detection off
    (``NO_GPU_DETECTION``). A real ``/usr/bin/apptainer`` may still be proposed, but no image
    exists to prove it with."""
    root.mkdir(parents=True, exist_ok=True)
    return FakeBin(root, root.parent / f"{root.name}.log").env(CVMFS_MOUNT_DIR=str(root))
