"""The third-party packages the glidein tarball ships, exactly as ``vendor.lock`` pins them.

``vendor.lock`` (beside this module) names each distribution and version, then the sha256 of
every file the tarball takes from it::

    pluggy 1.6.0 MIT
        SHA256  pluggy/__init__.py
        SHA256  licenses/pluggy-LICENSE

``files()`` finds those bytes in one of two places: this Python's installed distribution when
its version and files match, else a wheel or sdist of that version in the directories given
(``pack --vendor-from DIR``). Anything else is refused with the one command that fetches the
right files: what ships never depends on what happens to be installed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import tarfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

LOCK = Path(__file__).with_name("vendor.lock")
# what ships of each distribution: its import name (the tarball's top-level directory) and the
# file name endings taken from it (PyYAML's C extension stays behind: the pure loader is used)
SHIPPED = {"pluggy": ("pluggy", (".py", "py.typed")), "PyYAML": ("yaml", (".py",))}
LICENSE = re.compile(r"(LICEN[CS]E|COPYING)", re.IGNORECASE)  # a licence file's name
_SDIST_ROOTS = ("src/", "lib/", "")  # where an sdist keeps its package


class VendorError(Exception):
    """A locked distribution cannot be found with the locked bytes."""


@dataclass(frozen=True)
class Locked:
    """One distribution of the lock: what ships of it, file by file."""

    name: str
    version: str
    license: str
    files: dict[str, str]  # tarball path -> sha256

    @property
    def module(self) -> str:
        return SHIPPED[self.name][0]

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


def read_lock(path: Path = LOCK) -> list[Locked]:
    """The lock's distributions; a malformed line is a VendorError naming ``file:line``."""
    found: list[Locked] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split(maxsplit=2)
        if not line[0].isspace() and len(fields) == 3 and fields[0] in SHIPPED:
            found.append(Locked(fields[0], fields[1], fields[2], files={}))
        elif line[0].isspace() and found and len(fields) == 2 and re.fullmatch(
                r"[0-9a-f]{64}", fields[0]):
            found[-1].files[fields[1]] = fields[0]
        else:
            raise VendorError(f"{path}:{number}: neither 'NAME VERSION LICENSE' (NAME one of "
                              f"{', '.join(SHIPPED)}) nor an indented 'SHA256  PATH': "
                              f"{line.strip()!r}")
    return found


def format_lock(locked: Iterable[Locked], header: str) -> str:
    """The lock file's text (``header``: comment lines without their ``#``)."""
    lines = [f"# {text}".rstrip() for text in header.splitlines()]
    for dist in locked:
        lines.append(f"{dist.name} {dist.version} {dist.license}")
        lines += [f"    {digest}  {name}" for name, digest in sorted(dist.files.items())]
    return "\n".join(lines) + "\n"


def lock_entry(archive: Path, license: str) -> Locked:
    """The lock entry of a wheel or sdist (for ``tools/lock.py``): its shipped files' hashes."""
    name, version = _archive_name(archive.name)
    dist = next((known for known in SHIPPED if normal_name(known) == normal_name(name)), "")
    if not dist:
        raise VendorError(f"{archive.name}: not one of the shipped distributions "
                          f"({', '.join(SHIPPED)})")
    locked = Locked(dist, version, license, {})
    suffixes = SHIPPED[dist][1]
    contents = _archive(archive, locked)
    locked.files.update({path: hashlib.sha256(data).hexdigest()
                         for path, data in contents.items()
                         if path.startswith("licenses/") or path.endswith(suffixes)})
    return locked


def fetch_command(locked: Iterable[Locked]) -> str:
    """The one command that puts every locked distribution into ``DIR``."""
    wanted = " ".join(f"'{dist.requirement}'" for dist in locked)
    return f"python3 -m pip download --no-deps --dest DIR {wanted}"


def files(locked: Locked, search: Sequence[Path] = ()) -> dict[str, bytes]:
    """Every locked file of ``locked`` (tarball path -> bytes), from the installed distribution
    or an archive in ``search``; VendorError saying what was found and how to get it."""
    seen = []
    for origin, contents in _candidates(locked, search):
        if contents is None:
            seen.append(origin)
            continue
        wrong = sorted(name for name, digest in locked.files.items()
                       if name not in contents
                       or hashlib.sha256(contents[name]).hexdigest() != digest)
        if not wrong:
            return {name: contents[name] for name in locked.files}
        seen.append(f"{origin} differs from the lock in {wrong[0]}"
                    + (f" and {len(wrong) - 1} more" if len(wrong) > 1 else ""))
    if len(seen) == 1:  # only the installed distribution was looked at
        seen.append("no wheel or sdist of it in " + (", ".join(map(str, search)) or
                                                     "--vendor-from (none given)"))
    raise VendorError(f"{locked.name} {locked.version} (vendor.lock): {'; '.join(seen)}")


def _candidates(locked: Locked,
                search: Iterable[Path]) -> Iterator[tuple[str, dict[str, bytes] | None]]:
    """``(origin, its files)`` of each place the distribution may be (None: unusable)."""
    yield _installed(locked)
    for directory in search:
        if not directory.is_dir():
            yield f"{directory}: not a directory", None
            continue
        for archive in sorted(directory.iterdir()):
            if _is_archive_of(archive.name, locked):
                contents = _archive(archive, locked)
                yield (str(archive), contents) if contents else (
                    f"{archive}: not a readable wheel or sdist", None)


def normal_name(name: str) -> str:
    """A distribution name as PEP 503 compares them (``PyYAML`` = ``pyyaml``)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _archive_name(filename: str) -> tuple[str, str]:
    """``(name, version)`` of a wheel or sdist file name (``('', '')`` for anything else)."""
    suffix = next((end for end in (".whl", ".tar.gz", ".zip") if filename.endswith(end)), "")
    name, _, rest = filename[:-len(suffix) or None].partition("-")
    return (name, rest.split("-")[0]) if suffix and rest else ("", "")


def _is_archive_of(filename: str, locked: Locked) -> bool:
    name, version = _archive_name(filename)
    return normal_name(name) == normal_name(locked.name) and version == locked.version


def _installed(locked: Locked) -> tuple[str, dict[str, bytes] | None]:
    """The installed distribution's files (None when it is absent or another version)."""
    from importlib import metadata  # noqa: PLC0415 - only pack needs it

    try:
        dist = metadata.distribution(locked.name)
    except metadata.PackageNotFoundError:
        return "not installed for this Python", None
    spec = importlib.util.find_spec(locked.module)
    folders = list(spec.submodule_search_locations or []) if spec else []
    if dist.version != locked.version or not folders:
        return f"this Python has {locked.name} {dist.version}", None
    root = Path(folders[0]).parent
    contents = {}
    for name in locked.files:
        if name.startswith(f"{locked.module}/"):
            path = root / name
            if path.is_file():
                contents[name] = path.read_bytes()
    for item in dist.files or ():
        if ".dist-info/" in item.as_posix() and LICENSE.search(item.name):
            contents[f"licenses/{locked.name}-{item.name}"] = Path(str(item.locate())).read_bytes()
    return f"installed {locked.name} {dist.version} ({root})", contents


def _archive(path: Path, locked: Locked) -> dict[str, bytes]:
    """The files of a wheel or sdist under their tarball paths (unreadable: none)."""
    contents: dict[str, bytes] = {}
    module = f"{locked.module}/"
    sdist = not path.name.endswith(".whl")
    for name, data in _members(path):
        inner = name.split("/", 1)[1] if sdist and "/" in name else name
        base = inner.rsplit("/", 1)[-1]
        if LICENSE.search(base) and (inner == base or ".dist-info/" in inner):
            contents.setdefault(f"licenses/{locked.name}-{base}", data)
            continue
        for root in _SDIST_ROOTS if sdist else ("",):
            if inner.startswith(root + module):
                contents.setdefault(inner[len(root):], data)
                break
    return contents


def _members(path: Path) -> list[tuple[str, bytes]]:
    """``(name, bytes)`` of every regular file in a zip or tar archive."""
    try:
        if path.name.endswith((".whl", ".zip")):
            with zipfile.ZipFile(path) as archive:
                return [(info.filename, archive.read(info)) for info in archive.infolist()
                        if not info.is_dir()]
        with tarfile.open(path) as tar:
            return [(member.name, tar.extractfile(member).read())  # type: ignore[union-attr]
                    for member in tar.getmembers() if member.isfile()]
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError):
        return []
