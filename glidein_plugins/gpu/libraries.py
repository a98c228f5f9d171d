"""What a GPU job needs besides the device: the CUDA driver API version (``libcuda``), the NVIDIA
user-space libraries the container runtime injects with ``--nv`` (its ``nvliblist.conf``,
looked up in the dynamic linker's cache as the runtime does), the OpenCL ICDs of
``/etc/OpenCL/vendors`` (bound into containers), and the ROCm version.

Library names, for VO plugins that read ``facts.libraries``: ``cuda`` (version: the CUDA driver
API version, ``12.4``), ``nvidia:<library>`` (``nvidia:libcuda.so``; version: the driver's),
``opencl:<vendor>`` (path: the library the ICD names), ``rocm`` (version ``6.0.2``).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence

from glidein_plugins.gpu import validate
from glidein_plugins.gpu.amd import ROCM_DEFAULT
from glidein_plugins.gpu.common import Host
from glidein_plugins.spec.results import Library

OPENCL_VENDORS = "/etc/OpenCL/vendors"
FLAVOURS = ("apptainer", "singularity")
# what --nv needs at the least, when no nvliblist.conf is found
ESSENTIAL_NVIDIA = ("libcuda.so", "libnvidia-ml.so", "libnvidia-ptxjitcompiler.so")
_LD_CACHE_LINE = re.compile(r"^\s*(\S+)\s+\(([^)]*)\)\s+=>\s+(\S.*?)\s*$")
_CUDA_ANSWER = re.compile(r"^0 (\d{4,6})$")  # 12040: CUDA 12.4
_PATH = re.compile(r"^/[^\x00-\x1f\x7f\ufffd]{1,4095}$")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f\ufffd]")
# run in a separate interpreter: loading libcuda into the glidein's own process could hang it
CUDA_PROBE = """\
import ctypes, sys
try:
    lib = ctypes.CDLL("libcuda.so.1")
except OSError as exc:
    print("cannot load", exc)
    sys.exit(2)
version = ctypes.c_int(0)
print(lib.cuDriverGetVersion(ctypes.byref(version)), version.value)
"""


def opencl_icds(host: Host) -> list[Library]:
    """One library per ICD file: ``opencl:<file stem>``, the library it names as path."""
    found = []
    for name in host.listdir(OPENCL_VENDORS) or []:
        if not name.endswith(".icd"):
            continue
        text = host.read(f"{OPENCL_VENDORS}/{name}") or ""
        library = next((line.strip() for line in text.splitlines()
                        if line.strip() and not line.lstrip().startswith("#")), "")
        if _UNPRINTABLE.search(library) or len(library) > 4095:
            library = ""  # not a name a loader could use: the ICD is listed without it
        found.append(Library(f"opencl:{name[:-4]}", path=library,
                             source=f"{OPENCL_VENDORS}/{name}"))
    return found


def parse_ld_cache(text: str, notes: validate.Notes | None = None) -> dict[str, str]:
    """``ldconfig -p``: soname -> path, the 64-bit entry when a name has several. An entry
    whose path is not a plausible absolute path is left out (counted in a warning)."""
    cache: dict[str, tuple[str, str]] = {}
    bad = 0
    for line in text.splitlines():
        match = _LD_CACHE_LINE.match(line)
        if not match:
            continue
        name, flags, path = match.groups()
        if not _PATH.match(path) or "\ufffd" in name:
            bad += 1
            continue
        if name not in cache or ("64" in flags and "64" not in cache[name][0]):
            cache[name] = (flags, path)
    if bad and notes is not None:
        notes.append(("warning", f"ldconfig -p: {bad} entries with an implausible name or path "
                                 "left out"))
    return {name: path for name, (_, path) in cache.items()}


def parse_nvliblist(text: str) -> list[str]:
    """The libraries (entries ending in ``.so``) of an ``nvliblist.conf``."""
    return [line.strip() for line in text.splitlines()
            if line.strip().endswith(".so") and not line.lstrip().startswith("#")]


def nvliblist_paths(runtime: str, host: Host) -> list[str]:
    """Where the runtime at ``runtime`` keeps its nvliblist.conf: ``PREFIX/etc/<flavour>/``
    for a binary in ``PREFIX/bin``, then the system's ``/etc/<flavour>/``."""
    found = []
    if runtime:
        prefix = os.path.dirname(os.path.dirname(runtime))
        found += [f"{prefix}/etc/{flavour}/nvliblist.conf" for flavour in FLAVOURS]
    found += [host.path(f"/etc/{flavour}/nvliblist.conf") for flavour in FLAVOURS]
    return list(dict.fromkeys(found))


def read_first(paths: Sequence[str]) -> tuple[str, str | None]:
    for path in paths:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                return path, handle.read(1 << 20)
        except OSError:
            continue
    return "", None


def in_cache(cache: dict[str, str], library: str) -> list[tuple[str, str]]:
    """The cache entries the runtime binds for ``library`` (``libcuda.so`` matches
    ``libcuda.so`` and ``libcuda.so.1``)."""
    return [(name, path) for name, path in cache.items()
            if name == library or name.startswith(library + ".")]


def file_version(host: Host, path: str) -> str:
    """The version in the name a library symlink resolves to: libcuda.so.1 ->
    libcuda.so.550.54.15 -> ``550.54.15`` ('' when the name has none)."""
    real = os.path.basename(os.path.realpath(host.path(path)))
    _, _, version = real.partition(".so.")
    return version if "." in version else ""


def nvidia_libraries(host: Host, cache: dict[str, str],
                     wanted: Sequence[str]) -> tuple[list[Library], list[str]]:
    """The wanted libraries found in the cache, and those missing."""
    found, missing = [], []
    for library in wanted:
        entries = in_cache(cache, library)
        if not entries:
            missing.append(library)
            continue
        name, path = sorted(entries)[-1]  # the versioned soname (libcuda.so.1) if any
        found.append(Library(f"nvidia:{library}", file_version(host, path), path,
                             source=f"ld cache ({name})"))
    return found, missing


def cuda_version_number(number: int) -> str:
    """CUDA's version encoding as text: 12040 -> ``12.4``."""
    return f"{number // 1000}.{number % 1000 // 10}"


def cuda_driver_version(host: Host) -> tuple[str, str]:
    """``(version, '')`` from ``cuDriverGetVersion`` of the libcuda the dynamic linker finds,
    or ``('', why not)``. Runs in a separate, bounded Python process."""
    python = sys.executable or "python3"
    result = host.run([python, "-I", "-S", "-c", CUDA_PROBE])
    answer = result.stdout.strip()
    match = _CUDA_ANSWER.match(answer)
    if result.ok and match:
        return cuda_version_number(int(match.group(1))), ""
    if result.returncode == 2 and answer.startswith("cannot load"):
        return "", f"libcuda.so.1 {answer}"
    if result.ok:
        return "", f"cuDriverGetVersion answered {answer[:80]!r}"
    return "", result.reason


def rocm_version(host: Host, notes: validate.Notes | None = None) -> Library | None:
    """ROCm's version from ``$ROCM_PATH`` or /opt/rocm ``.info/version`` (``6.0.2-115``); an
    implausible one is dropped with a warning in ``notes``."""
    notes = [] if notes is None else notes
    for root in dict.fromkeys(filter(None, (host.environ.get("ROCM_PATH"), ROCM_DEFAULT))):
        text = (host.read(f"{root}/.info/version") or "").strip()
        version = validate.version(text.split("-")[0][:64], f"{root}/.info/version", notes)
        if version:
            return Library("rocm", version, root, source=f"{root}/.info/version")
    return None
