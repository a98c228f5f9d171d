"""AMD GPUs: the KFD topology the ``amdgpu`` driver publishes in ``/sys`` (what ROCm itself
enumerates), ``/dev/kfd`` and the ``/dev/dri/renderD<N>`` nodes (without them ROCm cannot use
a GPU), and ``rocm-smi`` when present (product names, memory, the driver version).

A KFD node is a GPU when its ``simd_count`` is not 0 (CPU nodes have none). Its
``gfx_target_version`` (``90010``) names the ISA ROCm compiles for (``gfx90a``): that is the
capability advertised for AMD GPUs. rocm-smi's ``GFX Version`` says the same in decimal
(``gfx9010``: stepping 10), converted to the LLVM name (``gfx90a``) by ``llvm_target``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from glidein_plugins.gpu import validate
from glidein_plugins.gpu.common import (
    Enumerated,
    Host,
    Report,
    missing_value,
    pci_bus_id,
    plural,
)
from glidein_plugins.spec.results import GpuDevice

KFD_SOURCE = "/sys/class/kfd"
NODES = "/sys/class/kfd/kfd/topology/nodes"
KFD_DEVICE = "/dev/kfd"
ROCM_DEFAULT = "/opt/rocm"
SMI_SOURCE = "rocm-smi"
SMI_ARGS = ("--showproductname", "--showmeminfo", "vram", "--showuniqueid", "--showbus",
            "--showdriverversion", "--json")
_FB_HEAPS = (1, 2)  # heap_type of the frame buffer (public, private) in mem_banks
MIB = 1 << 20
MAX_DIGITS = 20  # a KFD property is at most 64 bits
# rocm-smi's "GFX Version": gfx, the major (6-12), the minor, the stepping in decimal
_SMI_GFX = re.compile(r"^gfx(1[0-2]|[6-9])(\d)(\d{1,2})$")


def parse_properties(text: str, where: str = "", notes: validate.Notes | None = None
                     ) -> dict[str, int]:
    """A KFD ``properties`` file: ``name value`` lines of integers (a value longer than 64
    bits is left out, with a warning in ``notes``)."""
    values = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            continue
        if len(parts[1]) > MAX_DIGITS:
            if notes is not None:
                notes.append(("warning", f"{where}: {validate.shown(parts[0])} "
                                         f"{validate.shown(parts[1])} is not a 64-bit value: "
                                         "ignored"))
            continue
        values[parts[0]] = int(parts[1])
    return values


def gfx_name(version: int) -> str:
    """``gfx_target_version`` as the ISA name: 90010 -> gfx90a, 90402 -> gfx942, 110001 ->
    gfx1101 ('' for 0)."""
    if version <= 0:
        return ""
    major, minor, stepping = version // 10000, version // 100 % 100, version % 100
    return f"gfx{major}{minor:x}{stepping:x}"


def llvm_target(text: str) -> str:
    """rocm-smi's ``GFX Version`` as the LLVM target name: ROCm 6 prints the stepping in
    decimal (``gfx9010`` for gfx90a, ``gfx9012`` for gfx90c); names already in LLVM form
    (``gfx90a``, ``gfx942``, ``gfx1100``) are kept."""
    match = _SMI_GFX.match(text.strip().lower())
    if match is None or int(match.group(3)) > 15:
        return text.strip().lower()
    major, minor, stepping = match.groups()
    return f"gfx{major}{minor}{int(stepping):x}"


def _bus(props: Mapping[str, int]) -> str:
    location = props.get("location_id", 0)
    if not location:
        return ""
    return pci_bus_id(f"{props.get('domain', 0):x}:{location >> 8 & 0xff:x}:"
                      f"{location >> 3 & 0x1f:x}.{location & 0x7}")


def _memory_mb(host: Host, node: str, props: Mapping[str, int]) -> int:
    if props.get("local_mem_size", 0) > 0:
        return props["local_mem_size"] // MIB
    total = 0
    for bank in host.listdir(f"{NODES}/{node}/mem_banks") or []:
        bank_props = parse_properties(host.read(f"{NODES}/{node}/mem_banks/{bank}/properties")
                                      or "")
        if bank_props.get("heap_type") in _FB_HEAPS:
            total += bank_props.get("size_in_bytes", 0)
    return total // MIB


def driver_version(host: Host) -> str:
    return (host.read("/sys/module/amdgpu/version") or "").strip()


def from_kfd(host: Host) -> tuple[Report, list[Enumerated], dict[int, int]]:
    """The GPU nodes of the KFD topology, and each one's render node minor by its index."""
    nodes = host.listdir(NODES)
    if nodes is None:
        return Report(KFD_SOURCE, status=f"{KFD_SOURCE}: absent (no AMD GPU driver)"), [], {}
    version = driver_version(host)
    found: list[Enumerated] = []
    render: dict[int, int] = {}
    notes: validate.Notes = []
    for node in sorted((name for name in nodes if name.isdigit() and len(name) < 6), key=int):
        where = f"{NODES}/{node}"
        props = parse_properties(host.read(f"{where}/properties") or "", where, notes)
        if props.get("simd_count", 0) <= 0:
            continue
        gfx = gfx_name(props.get("gfx_target_version", 0))
        if gfx and not validate.plausible_isa(gfx):
            notes.append(("warning", f"{where}: gfx_target_version "
                                     f"{props['gfx_target_version']} is not an ISA: dropped"))
            gfx = ""
        unique = props.get("unique_id", 0)
        device = validate.device(GpuDevice(
            "amd", f"AMD {gfx}" if gfx else "AMD GPU", uuid=f"GPU-{unique:016x}" if unique else "",
            pci_bus_id=_bus(props), memory_mb=_memory_mb(host, node, props), capability=gfx,
            driver_version=version, source=KFD_SOURCE), where, notes)
        found.append(Enumerated(device, len(found)))
        if props.get("drm_render_minor", 0) > 0:
            render[found[-1].index] = props["drm_render_minor"]
    targets = sorted({item.device.capability for item in found if item.device.capability})
    status = f"{KFD_SOURCE}: {plural(len(found), 'GPU')}" + (
        f" ({', '.join(targets)})" if targets else "")
    return Report(KFD_SOURCE, tuple(item.device for item in found), ran=True, ok=True,
                  status=status, notes=tuple(notes), extra={"driver_version": version}), \
        found, render


def _field(card: Mapping[str, Any], *names: str) -> str:
    lowered = {str(key).strip().lower(): value for key, value in card.items()}
    for name in names:
        value = str(lowered.get(name, "")).strip()
        if not missing_value(value):
            return value
    return ""


def parse_smi(text: str, notes: validate.Notes | None = None) -> tuple[list[GpuDevice], str]:
    """``rocm-smi ... --json``: the cards in order, and the driver version. ValueError when
    the output holds no JSON object; implausible fields are dropped with a warning in
    ``notes``."""
    notes = [] if notes is None else notes
    start = text.find("{")  # warnings may come first
    if start < 0:
        raise ValueError("no JSON in the output")
    # every number kept as text: a huge or NaN value is then one bad field, not a bad document
    data = json.loads(text[start:], parse_int=str, parse_float=str, parse_constant=str)
    if not isinstance(data, dict):
        raise ValueError("the JSON is not an object")
    cards = sorted((key for key in data if str(key).lower().startswith("card")
                    and str(key)[4:].isdigit() and len(str(key)) < 10),
                   key=lambda key: int(str(key)[4:]))
    devices = []
    driver = _field(data.get("system", {}) if isinstance(data.get("system"), dict) else {},
                    "driver version")
    for key in cards:
        card = data[key] if isinstance(data[key], dict) else {}
        where = f"{SMI_SOURCE} {key}"
        unique = _field(card, "unique id").lower().removeprefix("0x")
        driver = driver or _field(card, "driver version")
        bus = _field(card, "pci bus")
        devices.append(validate.device(GpuDevice(
            "amd", _field(card, "card series", "card sku", "card model", "device name"),
            uuid=f"GPU-{unique}" if unique and all(c in "0123456789abcdef" for c in unique)
            else "", pci_bus_id=pci_bus_id(bus.split()[0] if bus else ""),
            memory_mb=validate.memory(_field(card, "vram total memory (b)"), where,
                                                   notes, divisor=MIB),
            capability=llvm_target(_field(card, "gfx version")), source=SMI_SOURCE), where,
            notes))
    return devices, driver


def from_rocm_smi(host: Host, exe: str) -> Report:
    result = host.run([exe, *SMI_ARGS])
    where = f"{SMI_SOURCE} ({exe})"
    if not result.ok:
        return Report(SMI_SOURCE, ran=True, level="warning", status=result.reason)
    notes: validate.Notes = []
    try:
        devices, driver = parse_smi(result.stdout, notes)
    except (ValueError, RecursionError) as exc:  # json.JSONDecodeError is a ValueError
        return Report(SMI_SOURCE, ran=True, level="warning",
                      status=f"{where}: exit 0 but unusable output ({exc})")
    if driver and not validate.plausible_driver(driver):
        notes.append(("warning", f"{where}: driver version {validate.shown(driver)} is not "
                                 "plausible: dropped"))
        driver = ""
    devices = [replace(gpu, driver_version=driver) for gpu in devices]
    names = sorted({gpu.name for gpu in devices if gpu.name})
    return Report(SMI_SOURCE, tuple(devices), ran=True, ok=True,
                  status=f"{where}: {plural(len(devices), 'GPU')}"
                  + (f" ({', '.join(names)})" if names else "")
                  + (f", driver {driver}" if driver else ""),
                  notes=tuple(notes), extra={"driver_version": driver})


def enrich(kfd: list[Enumerated], smi: Report) -> list[Enumerated]:
    """KFD devices with rocm-smi's name, memory, UUID and driver, matched by PCI bus (or by
    order when neither has bus ids and the counts agree)."""
    by_bus = {gpu.pci_bus_id: gpu for gpu in smi.devices if gpu.pci_bus_id}
    ordered = len(smi.devices) == len(kfd) and not by_bus
    enriched = []
    for position, item in enumerate(kfd):
        gpu = item.device
        other = by_bus.get(gpu.pci_bus_id) or (smi.devices[position] if ordered else None)
        if other is not None:
            gpu = replace(gpu, name=other.name or gpu.name, uuid=gpu.uuid or other.uuid,
                          memory_mb=other.memory_mb or gpu.memory_mb,
                          driver_version=gpu.driver_version or other.driver_version)
        enriched.append(Enumerated(gpu, item.index))
    return enriched
