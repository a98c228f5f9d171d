"""Every value a GPU source reads from a tool or a driver file is checked here before it is
believed. One absurd field (a memory of 2**63, a negative or NaN size, an unknown capability, a
name with control characters or bytes that were not UTF-8) is dropped, or cleaned, with a
warning naming the source, the device and the field; the rest of that device, and every other
device, is still published.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from glidein_plugins.spec.results import GpuDevice

Notes = list[tuple[str, str]]
MAX_MEMORY_MB = 1 << 24  # 16 TiB: far above any GPU
MAX_DEVICES = 1024  # per source; HTCondor's own limit on a node is far lower in practice
MAX_NAME = 128
_NUMBER = re.compile(r"^\s*(\d{1,30})(?:\.\d*)?\s*(?:[KMG]i?B)?\s*$", re.IGNORECASE)
_NVIDIA_CAPABILITY = re.compile(r"^\d{1,2}\.\d{1,2}$")
_AMD_ISA = re.compile(r"^gfx[0-9a-f]{3,5}$")
_UUID = re.compile(r"^(?:MIG-)?(?:GPU-)?[0-9A-Za-z][0-9A-Za-z/_-]{3,95}$")
_DRIVER = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._+~-]{0,63}$")
_VERSION = re.compile(r"^\d{1,3}(?:\.\d{1,5}){0,3}$")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ufffd]")


def shown(value: object) -> str:
    """A value quoted for a warning, in ASCII, cut short (it may be huge or hostile)."""
    text = ascii(value)
    return text if len(text) <= 40 else text[:37] + "..."


def memory(text: str, where: str, notes: Notes, divisor: int = 1) -> int:
    """A memory size in MiB from a tool's text (``81559``, ``81559 MiB``, ``40536.0``; bytes
    with ``divisor`` 2**20); 0 with a warning when it is negative, not a number or absurd, and
    0 quietly when the tool said it does not know ('' or a placeholder)."""
    text = text.strip()
    if not text:
        return 0
    match = _NUMBER.match(text)
    value = int(match.group(1)) // divisor if match else -1
    if not 0 <= value <= MAX_MEMORY_MB:
        notes.append(("warning", f"{where}: memory {shown(text)} is not a plausible size: "
                                 "dropped, the rest of the device kept"))
        return 0
    return value


def device(gpu: GpuDevice, where: str, notes: Notes) -> GpuDevice:
    """``gpu`` with each implausible field dropped (or its name cleaned), one warning each."""
    changes: dict[str, object] = {}

    def drop(field: str, value: object, empty: object) -> None:
        changes[field] = empty
        notes.append(("warning", f"{where}: {field} {shown(value)} is not plausible: dropped, "
                                 "the rest of the device kept"))

    if not 0 <= gpu.memory_mb <= MAX_MEMORY_MB:
        drop("memory_mb", gpu.memory_mb, 0)
    capability = _NVIDIA_CAPABILITY if gpu.vendor == "nvidia" else _AMD_ISA \
        if gpu.vendor == "amd" else None
    if gpu.capability and capability is not None and not capability.match(gpu.capability):
        drop("capability", gpu.capability, "")
    if gpu.uuid and not _UUID.match(gpu.uuid):
        drop("uuid", gpu.uuid, "")
    if gpu.driver_version and not _DRIVER.match(gpu.driver_version):
        drop("driver_version", gpu.driver_version, "")
    name = _UNPRINTABLE.sub("?", gpu.name.strip())[:MAX_NAME]
    if name != gpu.name.strip():
        changes["name"] = name
        notes.append(("warning", f"{where}: name {shown(gpu.name)} has unprintable characters "
                                 f"or is too long: published as {name!r}"))
    return replace(gpu, **changes) if changes else gpu  # type: ignore[arg-type]


def devices(found: Sequence[GpuDevice], source: str, notes: Notes) -> list[GpuDevice]:
    """Every device checked (named by its place in ``source``'s answer), at most
    ``MAX_DEVICES`` of them."""
    if len(found) > MAX_DEVICES:
        notes.append(("warning", f"{source} lists {len(found)} devices: only the first "
                                 f"{MAX_DEVICES} are believed"))
    return [device(gpu, f"{source} device {number}", notes)
            for number, gpu in enumerate(found[:MAX_DEVICES])]


def plausible_isa(text: str) -> bool:
    return bool(_AMD_ISA.match(text))


def plausible_driver(text: str) -> bool:
    return bool(_DRIVER.match(text))


def version(text: str, where: str, notes: Notes) -> str:
    """A version such as ``12.4`` or ``6.0.2``; '' with a warning when ``text`` is not one."""
    text = text.strip()
    if text and not _VERSION.match(text):
        notes.append(("warning", f"{where}: version {shown(text)} is not plausible: dropped"))
        return ""
    return text
