"""The glidein tarball (``glidein-plugins pack``): what GlideinWMS untars into one flat directory.

Layout (every path relative to the untar directory)::

    glidein_plugins/        the package (its __pycache__: bytecode and parsed configs, see below)
    hooks/                  setup script, job wrapper, periodic script
    factory_configs/        the factory's per-entry YAML
    pluggy/  yaml/          vendored pure-Python dependencies (PyYAML without its C extension)
    licenses/               the vendored distributions' licence files
    VERSION                 ``glidein_plugins VERSION`` then each vendored ``NAME VERSION``
    MANIFEST                ``SHA256  PATH`` for every other file (``sha256sum -c MANIFEST``)

psutil is not vendored (it has compiled parts): the package works without it.

Bytecode (``__pycache__/*.TAG.pyc``) is shipped for each interpreter named (default: the one
packing): a glidein whose Python is one of them skips compiling ~95 modules at start-up. The
``.pyc`` files are checked against a hash of their source (GlideinWMS untars with ``tar -m``,
so modification times say nothing); another Python ignores them and compiles as usual. The
YAML configurations are shipped parsed too (``factory_config``).

The build is reproducible: entries sorted, owner root:root with no names, modes 0755/0644,
one fixed mtime, gzip header without a name or time. Building twice gives identical bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import os
import re
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from glidein_plugins import __version__, commands, factory_config
from glidein_plugins.errors import ConfigError

MTIME = 946684800  # 2000-01-01T00:00:00Z: every entry's fixed modification time
# (import name, distribution name, file name suffixes vendored)
VENDORED = (("pluggy", "pluggy", (".py", "py.typed")), ("yaml", "PyYAML", (".py",)))
SOURCE_DIRS = ("hooks", "factory_configs")
SKIPPED_DIRS = {"__pycache__"}
SKIPPED_SUFFIXES = (".pyc", ".pyo", ".so", ".pyd")
# the plugin-author kit (pytest fixtures, fake runtimes) has no use on a worker node
SKIPPED_PACKAGE_DIRS = ("testing",)


class PackError(Exception):
    """The tarball cannot be built (a source is missing or unsuitable)."""


@dataclass(frozen=True)
class Packed:
    """What ``build`` wrote."""

    path: Path
    size: int
    files: int
    sha256: str


def tarball_name(version: str = __version__) -> str:
    return f"glidein_plugins-{version}.tar.gz"


def _tree(source: Path, arcdir: str, suffixes: tuple[str, ...] = ()) -> dict[str, Path]:
    """Every regular file under ``source`` as ``arcdir/relative path``, caches and compiled
    files left out (only names ending with ``suffixes`` when given)."""
    if not source.is_dir():
        raise PackError(f"{source}: not a directory (pack needs a source checkout holding "
                        f"glidein_plugins/, hooks/ and factory_configs/ side by side)")
    files = {}
    for directory, subdirs, names in os.walk(source):
        subdirs[:] = [name for name in subdirs
                      if name not in SKIPPED_DIRS and not name.startswith(".")]
        for name in names:
            path = Path(directory, name)
            if (name.startswith(".") or name.endswith(SKIPPED_SUFFIXES) or not path.is_file()
                    or (suffixes and not name.endswith(suffixes))):
                continue
            files[f"{arcdir}/{path.relative_to(source).as_posix()}"] = path
    return files


def _vendored() -> tuple[dict[str, Path], list[str]]:
    """The vendored packages' files (from this interpreter's installed distributions) and
    their ``NAME VERSION`` lines."""
    files: dict[str, Path] = {}
    versions = []
    for module, dist_name, suffixes in VENDORED:
        spec = importlib.util.find_spec(module)
        locations = list(spec.submodule_search_locations or []) if spec else []
        if not locations:
            raise PackError(f"{module}: not installed for this Python (pip install {dist_name})")
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            raise PackError(f"{dist_name}: no distribution metadata found") from None
        requires = " ".join(dist.metadata.get_all("Requires-Python") or [])
        floor = re.search(r">=\s*3\.(\d+)", requires)
        if floor and int(floor.group(1)) > 9:
            raise PackError(f"{dist_name} {dist.version} needs Python 3.{floor.group(1)} or "
                            f"newer; the glidein tarball must run on Python 3.9: install an "
                            f"older {dist_name} to pack")
        files.update(_tree(Path(locations[0]), module, suffixes))
        for item in dist.files or ():
            if re.search(r"(LICEN[CS]E|COPYING)", item.name, re.IGNORECASE):
                files[f"licenses/{dist_name}-{item.name}"] = Path(str(item.locate()))
        versions.append(f"{dist_name} {dist.version}")
    return files, versions


def sources(root: Path | None = None) -> tuple[dict[str, Path], str]:
    """Every file of the tarball but MANIFEST and VERSION (arcname -> source), and VERSION's
    text. ``root`` holds glidein_plugins/, hooks/ and factory_configs/ (default: the checkout
    this package is in)."""
    package = Path(__file__).resolve().parent
    root = root or package.parent
    files = {name: path for name, path in _tree(root / "glidein_plugins", "glidein_plugins").items()
             if name.split("/")[1] not in SKIPPED_PACKAGE_DIRS}
    for name in SOURCE_DIRS:
        files.update(_tree(root / name, name))
    vendored, versions = _vendored()
    files.update(vendored)
    return files, "".join(f"{line}\n" for line in [f"glidein_plugins {__version__}", *versions])


def _add(tar: tarfile.TarFile, name: str, data: bytes | None, executable: bool) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if data is None:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        tar.addfile(info)
    else:
        info.size = len(data)
        info.mode = 0o755 if executable else 0o644
        tar.addfile(info, io.BytesIO(data))


def _parsed_configs(files: dict[str, Path]) -> dict[str, tuple[bytes, bool]]:
    """The parsed form of every shipped YAML configuration (see ``factory_config``), which
    spares the glidein PyYAML; a configuration with errors stops the build."""
    found = {}
    for name, path in files.items():
        if name.endswith(".yaml") and name.split("/")[0] in ("factory_configs", "glidein_plugins"):
            try:
                data = factory_config.compiled(path)
            except ConfigError as exc:
                raise PackError(f"{name}: {exc}") from None
            if data is not None:
                cache = factory_config.cache_path(Path(name)).as_posix()
                found[cache] = (data, False)
    return found


# Run by each interpreter bytecode is made for: argv[1] the tree, argv[2:] the sources; the
# name each is compiled under (in tracebacks) is its path in the tarball.
_COMPILE = """
import os, py_compile, sys
os.chdir(sys.argv[1])
for name in sys.argv[2:]:
    py_compile.compile(name, dfile=name, doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
"""
COMPILE_TIMEOUT = 300.0


def bytecode(contents: dict[str, tuple[bytes, bool]],
             pythons: list[str]) -> dict[str, tuple[bytes, bool]]:
    """``__pycache__`` files of every ``.py`` in ``contents`` for each of ``pythons``."""
    sources = sorted(name for name in contents if name.endswith(".py"))
    found: dict[str, tuple[bytes, bool]] = {}
    with tempfile.TemporaryDirectory(prefix="glidein-plugins-pack-") as tmp:
        for name in sources:
            path = Path(tmp, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(contents[name][0])
        for python in pythons:
            result = commands.run([python, "-I", "-S", "-c", _COMPILE, tmp, *sources],
                                  COMPILE_TIMEOUT)
            if not result.ok:
                last = (result.stderr.strip().splitlines() or [""])[-1]
                raise PackError(f"cannot compile with {result.reason}{': ' if last else ''}"
                                f"{last}")
        for path in sorted(Path(tmp).rglob("*.pyc")):
            found[path.relative_to(tmp).as_posix()] = (path.read_bytes(), False)
    return found


def tarball_bytes(root: Path | None = None,
                  pythons: list[str] | None = None) -> tuple[bytes, int]:
    """The gzip tarball's bytes and how many files it holds (bytecode for ``pythons``,
    default: this interpreter; [] for none)."""
    files, version = sources(root)
    contents = {name: (path.read_bytes(), os.access(path, os.X_OK)) for name, path in
                files.items()}
    contents.update(_parsed_configs(files))
    contents.update(bytecode(contents, [sys.executable] if pythons is None else pythons))
    contents["VERSION"] = (version.encode(), False)
    manifest = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n"
                       for name, (data, _) in sorted(contents.items()))
    contents["MANIFEST"] = (manifest.encode(), False)
    dirs = {"/".join(name.split("/")[:depth]) for name in contents
            for depth in range(1, name.count("/") + 1)}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(dirs | set(contents)):
            data, executable = contents.get(name, (None, False))
            _add(tar, name, data, executable)
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, compresslevel=9, mtime=0) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue(), len(contents)


def build(output_dir: Path, root: Path | None = None,
          pythons: list[str] | None = None) -> Packed:
    """Write the tarball into ``output_dir`` (created if needed), atomically."""
    data, count = tarball_bytes(root, pythons)
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / tarball_name()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=output_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise
    return Packed(target, len(data), count, hashlib.sha256(data).hexdigest())
