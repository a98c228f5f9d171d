"""The glidein tarball (``glidein-plugins pack``): what GlideinWMS untars into one flat directory.

Layout (every path relative to the untar directory)::

    glidein_plugins/        the package (its __pycache__: bytecode and parsed configs, see below)
    hooks/                  setup script, job wrapper, periodic script
    factory_configs/        the factory's per-entry YAML (``--factory-configs DIR``, else ours)
    pluggy/  yaml/          vendored pure-Python dependencies (PyYAML without its C extension)
    NAME/  NAME.dist-info/  each enabled VO plugin's distribution (``pack_plugins``)
    licenses/               the vendored distributions' licence files
    VERSION                 ``glidein_plugins VERSION`` then ``NAME VERSION LICENSE`` for each
                            vendored distribution (``plugins=...`` for the VO plugins')
    MANIFEST                ``SHA256  PATH`` for every other file (``sha256sum -c MANIFEST``)

pluggy and PyYAML are exactly the files ``vendor.lock`` pins (``vendor``); psutil is not
vendored (it has compiled parts): the package works without it. The sources are the same from
a checkout and from any install (hooks/ and factory_configs/ travel in the wheel as
``glidein_plugins/_tarball/``), so both give the same bytes.

Bytecode (``__pycache__/*.TAG.pyc``) is shipped for each interpreter named (default: the one
packing): a glidein whose Python is one of them skips compiling ~95 modules at start-up. The
``.pyc`` files are checked against a hash of their source (GlideinWMS untars with ``tar -m``,
so modification times say nothing); another Python ignores them and compiles as usual. The
YAML configurations are shipped parsed too (``factory_config``).

The build is reproducible: entries sorted, owner root:root with no names, modes 0755 (hooks/
and directories) or 0644, one fixed mtime, gzip header without a name or time. Building twice
gives identical bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from glidein_plugins import __version__
from glidein_plugins._where import PACKAGE_DIR
from glidein_plugins.config import factory_config
from glidein_plugins.errors import ConfigError
from glidein_plugins.node import commands
from glidein_plugins.tarball import pack_plugins, vendor

MTIME = 946684800  # 2000-01-01T00:00:00Z: every entry's fixed modification time
SOURCE_DIRS = ("hooks", "factory_configs")
SKIPPED_DIRS = {"__pycache__"}
SKIPPED_SUFFIXES = (".pyc", ".pyo", ".so", ".pyd")
# no use on a worker node: the plugin-author kit (pytest fixtures, fake runtimes), and hooks/
# and factory_configs/ as installed from a wheel (they ship at the top level)
SKIPPED_PACKAGE_DIRS = ("testing", "_tarball")


class PackError(Exception):
    """The tarball cannot be built (a source is missing or unsuitable)."""


@dataclass(frozen=True)
class Packed:
    """What ``build`` wrote, and what went in besides the package."""

    path: Path
    size: int
    files: int
    sha256: str
    vendored: tuple[str, ...]  # VERSION's lines after the first
    notes: tuple[str, ...]  # plugins left to the node or left out


@dataclass(frozen=True)
class Sources:
    """Every file of the tarball but MANIFEST (arcname -> bytes), and what they hold."""

    contents: dict[str, bytes]
    configs: dict[str, Path]  # arcname -> the YAML file packed (to ship it parsed)
    vendored: tuple[str, ...]
    notes: tuple[str, ...]


def tarball_name(version: str = __version__) -> str:
    return f"glidein_plugins-{version}.tar.gz"


def _tree(source: Path, arcdir: str, suffixes: tuple[str, ...] = ()) -> dict[str, Path]:
    """Every regular file under ``source`` as ``arcdir/relative path``, caches and compiled
    files left out (only names ending with ``suffixes`` when given)."""
    if not source.is_dir():
        raise PackError(f"{source}: not a directory")
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


def source_dir(name: str) -> Path:
    """Where this install keeps ``hooks`` or ``factory_configs``: inside the package when
    installed from a wheel, beside it in a source checkout (or an editable install)."""
    package = Path(PACKAGE_DIR).resolve()
    installed = package / "_tarball" / name
    return installed if installed.is_dir() else package.parent / name


def sources(configs: Path | None = None, vendor_from: Sequence[Path] = ()) -> Sources:
    """Every file of the tarball but MANIFEST: the package, hooks/, the factory configs
    (``configs``, default: the shipped ones), the locked pluggy and PyYAML (installed, else
    from the archives in ``vendor_from``), and the VO plugins the configs enable."""
    package = Path(PACKAGE_DIR).resolve()
    files = {name: path for name, path in _tree(package, "glidein_plugins").items()
             if name.split("/")[1] not in SKIPPED_PACKAGE_DIRS}
    files.update(_tree(source_dir("hooks"), "hooks"))
    yaml_files = _tree(configs or source_dir("factory_configs"), "factory_configs", (".yaml",))
    files.update(yaml_files)
    try:
        config = factory_config.load(sorted(yaml_files.values(), key=lambda path: path.name))
        plugins = pack_plugins.collect(config)
    except ConfigError as exc:
        raise PackError(f"factory configuration: {exc}") from None
    except pack_plugins.CannotShip as exc:
        raise PackError(str(exc)) from None
    contents = {name: path.read_bytes() for name, path in files.items()}
    versions = [f"glidein_plugins {__version__}"]
    locked = vendor.read_lock()
    for dist in locked:
        try:
            contents.update(vendor.files(dist, vendor_from))
        except vendor.VendorError as exc:
            raise PackError(f"{exc}. Get the locked files with: {vendor.fetch_command(locked)}"
                            " then pack --vendor-from DIR") from None
        versions.append(f"{dist.name} {dist.version} {dist.license}")
    for shipped in plugins.shipped:
        contents.update({name: path.read_bytes() for name, path in shipped.files.items()})
        versions.append(shipped.line)
    contents["VERSION"] = "".join(f"{line}\n" for line in versions).encode()
    return Sources(contents, {name: path for name, path in files.items()
                              if name.endswith(".yaml")}, tuple(versions[1:]), plugins.notes)


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


def _parsed_configs(configs: dict[str, Path]) -> dict[str, bytes]:
    """The parsed form of every shipped YAML configuration (see ``factory_config``), which
    spares the glidein PyYAML; a configuration with errors stops the build."""
    found = {}
    for name, path in configs.items():
        try:
            data = factory_config.compiled(path)
        except ConfigError as exc:
            raise PackError(f"{name}: {exc}") from None
        if data is not None:
            found[factory_config.cache_path(Path(name)).as_posix()] = data
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


def bytecode(contents: dict[str, bytes], pythons: list[str]) -> dict[str, bytes]:
    """``__pycache__`` files of every ``.py`` in ``contents`` for each of ``pythons``."""
    sources = sorted(name for name in contents if name.endswith(".py"))
    found: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="glidein-plugins-pack-") as tmp:
        for name in sources:
            path = Path(tmp, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(contents[name])
        for python in pythons:
            result = commands.run([python, "-I", "-S", "-c", _COMPILE, tmp, *sources],
                                  COMPILE_TIMEOUT)
            if not result.ok:
                last = (result.stderr.strip().splitlines() or [""])[-1]
                raise PackError(f"cannot compile with {result.reason}{': ' if last else ''}"
                                f"{last}")
        for path in sorted(Path(tmp).rglob("*.pyc")):
            found[path.relative_to(tmp).as_posix()] = path.read_bytes()
    return found


def tarball_bytes(found: Sources, pythons: list[str] | None = None) -> tuple[bytes, int]:
    """The gzip tarball's bytes and how many files it holds (bytecode for ``pythons``,
    default: this interpreter; [] for none)."""
    contents = dict(found.contents)
    contents.update(_parsed_configs(found.configs))
    contents.update(bytecode(contents, [sys.executable] if pythons is None else pythons))
    contents["MANIFEST"] = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n"
                                   for name, data in sorted(contents.items())).encode()
    dirs = {"/".join(name.split("/")[:depth]) for name in contents
            for depth in range(1, name.count("/") + 1)}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(dirs | set(contents)):
            _add(tar, name, contents.get(name), executable=name.startswith("hooks/"))
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, compresslevel=9, mtime=0) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue(), len(contents)


def build(output_dir: Path, pythons: list[str] | None = None, configs: Path | None = None,
          vendor_from: Sequence[Path] = ()) -> Packed:
    """Write the tarball into ``output_dir`` (created if needed), atomically."""
    found = sources(configs, vendor_from)
    data, count = tarball_bytes(found, pythons)
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
    return Packed(target, len(data), count, hashlib.sha256(data).hexdigest(), found.vendored,
                  found.notes)
