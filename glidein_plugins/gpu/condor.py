"""HTCondor's ``condor_gpu_discovery -properties -extra``: the startd's own view of the GPUs.

Its output is ClassAd-ish lines. Newer versions (nested, the default since 9.x)::

    DetectedGPUs="GPU-8aa54555, MIG-0caf1ce3-fcd4-59da-8564-764000e3ace9"
    Common=[ DriverVersion=11.40; MaxSupportedVersion=11040; ]
    GPU_8aa54555=[ id="GPU-8aa54555"; Capability=8.0; DeviceName="..."; GlobalMemoryMb=20096; ]

Older ones, or ``-not-nested``, prefix every property with the device's id (``-`` and ``/``
made ``_``), and properties every device shares with ``CUDA`` (``OCL`` for OpenCL)::

    DetectedGPUs="GPU-c4a646d7, GPU-6a96bd13"
    CUDADriverVersion=11.20
    GPU_6a96bd13DeviceName="TITAN RTX"

A failure prints ``condor_gpu_discovery_error = "..."`` (and exits 1); no GPU is
``DetectedGPUs=0``. ``DriverVersion`` is printed as ``major.(version % 100)`` (11020 becomes
``11.20``), so the CUDA version is read from ``MaxSupportedVersion`` when it is there.

MIG: HTCondor reports each MIG device as a device and, since 9.2, leaves out the GPU they belong
to. Before that, a GPU in MIG mode was also listed under its own id with CUDA's view of it (its
``DeviceName`` ending in `` MIG <profile>``, one instance's memory): that entry is not a device
of its own and is not counted. HTCondor gives MIG devices no ``DeviceName`` (and, before 25.x,
no ``Capability``): they take the listed parent's, when it says.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Union

from glidein_plugins.gpu import validate
from glidein_plugins.gpu.common import Host, Report, pci_bus_id, plural, uuid_key
from glidein_plugins.spec.results import GpuDevice

SOURCE = "condor_gpu_discovery"
ARGS = ("-properties", "-extra")
# CUDA_VISIBLE_DEVICES & co. make it report only those devices; we want the whole node (with
# machine-level indices) and apply the slot's assignment ourselves, as for every source.
ASSIGNMENT_VARIABLES = ("CUDA_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL", "HIP_VISIBLE_DEVICES",
                        "ROCR_VISIBLE_DEVICES")
ERROR_KEY = "condor_gpu_discovery_error"
COMMON_PREFIXES = ("CUDA", "OCL", "HIP", "GPU")
_LINE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_AMD_NAMES = ("amd", "radeon", "instinct")
_NVIDIA_NAMES = ("nvidia", "tesla", "geforce", "quadro", "titan")

Value = Union[str, dict[str, str]]


@dataclass
class Discovery:
    """Parsed output: the detected ids in order, each device's properties (the common ones
    included), the properties all devices share, and the error line if any."""

    detected: list[str] = field(default_factory=list)
    devices: dict[str, dict[str, str]] = field(default_factory=dict)
    common: dict[str, str] = field(default_factory=dict)
    error: str = ""
    recognised: bool = False  # a DetectedGPUs or error line was seen


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts, current, quoted, escaped = [], [], False, False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\" and quoted:
            current.append(char)
            escaped = True
        elif char == '"':
            current.append(char)
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def scalar(text: str) -> str:
    """A ClassAd literal's value: a quoted string unquoted (``\\"`` and ``\\\\`` unescaped),
    anything else (numbers, booleans, an unquoted list) as written."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def value(text: str) -> Value:
    """A scalar, or a nested ad ``[ a=1; b="x"; ]`` as a dict."""
    text = text.strip()
    if not (text.startswith("[") and text.endswith("]")):
        return scalar(text)
    ad: dict[str, str] = {}
    for part in _split_outside_quotes(text[1:-1], ";"):
        match = _LINE.match(part)
        if match:
            ad[match.group(1)] = scalar(match.group(2))
    return ad


def parse(text: str) -> Discovery:
    """Parse ``condor_gpu_discovery -properties`` output, nested or not."""
    found = Discovery()
    flat: dict[str, str] = {}
    nested: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if not match or line.lstrip().startswith("#"):
            continue
        name, parsed = match.group(1), value(match.group(2))
        if name == "DetectedGPUs" and isinstance(parsed, str):
            found.recognised = True
            found.detected = [] if parsed in ("", "0") else [
                item.strip() for item in parsed.split(",") if item.strip()]
        elif name == ERROR_KEY:
            found.recognised = True
            found.error = parsed if isinstance(parsed, str) else str(parsed)
        elif isinstance(parsed, dict):
            nested[name] = parsed
        else:
            flat[name] = parsed
    found.common = dict(nested.pop("Common", {}))
    prefixes = {gpu_id: gpu_id.replace("-", "_").replace("/", "_") for gpu_id in found.detected}
    own: dict[str, dict[str, str]] = {gpu_id: {} for gpu_id in found.detected}
    for ad_name, ad in nested.items():
        gpu_id = ad.get("id") or ad_name
        own.setdefault(gpu_id, {}).update({k: v for k, v in ad.items() if k != "id"})
    by_length = sorted(prefixes.items(), key=lambda item: -len(item[1]))
    for name, text_value in flat.items():
        owner = next((gpu_id for gpu_id, prefix in by_length if name.startswith(prefix)
                      and name[len(prefix):][:1].isupper()), None)
        if owner is not None:
            own[owner][name[len(prefixes[owner]):]] = text_value
            continue
        common = next((name[len(p):] for p in COMMON_PREFIXES
                       if name.startswith(p) and name[len(p):][:1].isupper()), None)
        if common is not None:
            found.common[common] = text_value
    found.devices = {gpu_id: {**found.common, **props} for gpu_id, props in own.items()}
    return found


def cuda_version(props: Mapping[str, str]) -> str:
    """The CUDA driver API version (``12.4``) from ``MaxSupportedVersion`` (12040), else from
    ``DriverVersion`` (printed ``12.40`` by some versions); '' when neither is plausible."""
    number = props.get("MaxSupportedVersion", "")
    if number.isdigit() and 1000 <= int(number) < 1000000:
        return f"{int(number) // 1000}.{int(number) % 1000 // 10}"
    match = re.match(r"^(\d{1,3})\.(\d{1,3})$", props.get("DriverVersion", ""))
    if not match:
        return ""
    minor = match.group(2)
    return f"{match.group(1)}.{minor[0] if len(minor) == 2 and minor.endswith('0') else minor}"


def vendor(gpu_id: str, props: Mapping[str, str]) -> str:
    name = props.get("DeviceName", "").lower()
    if any(word in name for word in _AMD_NAMES) or "xNACK" in props:
        return "amd"
    if gpu_id.startswith(("CUDA", "MIG-", "GPU-")) and (
            "MaxSupportedVersion" in props or "Capability" in props):
        return "nvidia"
    if any(word in name for word in _NVIDIA_NAMES) or "MIG-" in gpu_id or props.get(
            "DeviceUuid", "").startswith("MIG-"):
        return "nvidia"
    return "other"


def _is_mig_device(gpu_id: str, props: Mapping[str, str]) -> bool:
    return "MIG-" in gpu_id or props.get("DeviceUuid", "").startswith("MIG-")


def device(gpu_id: str, props: Mapping[str, str], notes: validate.Notes) -> GpuDevice:
    uuid = props.get("DeviceUuid", "")
    if _UUID.match(uuid):  # the CUDA devices' UUIDs come without their GPU- prefix
        uuid = "GPU-" + uuid
    where = f"{SOURCE} {validate.shown(gpu_id)}"
    mig = _is_mig_device(gpu_id, props) or " MIG " in props.get("DeviceName", "")
    gpu = GpuDevice(vendor(gpu_id, props), props.get("DeviceName", ""), uuid=uuid,
                    pci_bus_id=pci_bus_id(props.get("DevicePciBusId", "")),
                    memory_mb=validate.memory(props.get("GlobalMemoryMb", ""), where, notes),
                    capability=props.get("Capability", ""),
                    driver_version=props.get("NvidiaDriver", "") or props.get(
                        "AmdDriverVersion", ""),
                    mig=mig, source=SOURCE)
    return validate.device(gpu, where, notes)


def devices(found: Discovery, notes: validate.Notes) -> list[GpuDevice]:
    """The devices a job can be given: MIG parents listed beside their MIG devices left out,
    MIG devices named after them."""
    detected = found.detected[:validate.MAX_DEVICES]
    if len(found.detected) > validate.MAX_DEVICES:
        notes.append(("warning", f"{SOURCE} lists {len(found.detected)} devices: only the "
                                 f"first {validate.MAX_DEVICES} are believed"))
    listed = [device(gpu_id, found.devices.get(gpu_id, {}), notes) for gpu_id in detected]
    is_mig = [_is_mig_device(gpu_id, found.devices.get(gpu_id, {})) for gpu_id in detected]
    parents = [number for number, gpu in enumerate(listed) if gpu.mig and not is_mig[number]]
    if not any(is_mig) or not parents:
        return listed
    notes.append(("info", f"{SOURCE} lists {', '.join(detected[n] for n in parents)} in MIG "
                          "mode beside its MIG devices (as HTCondor did before 9.2): not counted "
                          "as a device"))
    names = {(listed[n].name.split(" MIG ")[0], listed[n].capability) for n in parents}
    name, capability = next(iter(names)) if len(names) == 1 else ("", "")
    return [replace(gpu, name=gpu.name or (f"{name} MIG" if name else ""),
                    capability=gpu.capability or capability) if is_mig[number] else gpu
            for number, gpu in enumerate(listed) if number not in parents]


def environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment to run it in: without the variables that would hide devices."""
    return {key: item for key, item in environ.items() if key not in ASSIGNMENT_VARIABLES}


def from_discovery(host: Host, exe: str) -> Report:
    """Run ``exe -properties -extra`` and read the devices it reports."""
    result = host.run([exe, *ARGS], env=environment(host.environ))
    where = f"{SOURCE} ({exe})"
    found = parse(result.stdout) if not result.timed_out else Discovery()
    if found.error:
        return Report(SOURCE, ran=True, ok=False, level="warning",
                      status=f"{where}: {found.error} (exit {result.returncode})")
    if not result.ok:
        return Report(SOURCE, ran=True, ok=False, level="warning",
                      status=result.reason)
    if not found.recognised:
        first = result.stdout.strip().splitlines()[:1]
        shown = repr(first[0][:80]) if first else "nothing"
        return Report(SOURCE, ran=True, ok=False, level="warning",
                      status=f"{where}: exit 0 but printed {shown}, not DetectedGPUs")
    notes: validate.Notes = []
    listed = tuple(devices(found, notes))
    version = cuda_version(found.common) or next(
        (cuda_version(props) for props in found.devices.values() if cuda_version(props)), "")
    names = sorted({gpu.name for gpu in listed if gpu.name})
    status = (f"{where}: {plural(len(listed), 'device')}"
              + (f" ({', '.join(names)})" if names else "")
              + (f", CUDA {version}" if version else ""))
    return Report(SOURCE, listed, ran=True, ok=True, status=status, notes=tuple(notes),
                  extra={"cuda_version": version})


def same_device(left: GpuDevice, right: GpuDevice) -> bool:
    """Whether two reports name one device: by UUID, else by PCI bus (not for MIG)."""
    if left.uuid and right.uuid:
        return uuid_key(left.uuid) == uuid_key(right.uuid)
    return bool(left.pci_bus_id) and left.pci_bus_id == right.pci_bus_id and not (
        left.mig or right.mig)
