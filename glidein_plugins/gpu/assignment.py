"""The slot's GPU assignment: which of the node's GPUs this glidein may use.

The batch system that started the glidein says so in the environment: HTCondor sets
``CUDA_VISIBLE_DEVICES``, ``GPU_DEVICE_ORDINAL`` and ``_CONDOR_AssignedGPUs``; Slurm and others
``CUDA_VISIBLE_DEVICES``; AMD's runtimes read ``ROCR_VISIBLE_DEVICES`` and
``HIP_VISIBLE_DEVICES``. A value is a comma-separated list of indices (``0,1``), device names
(HTCondor's ``CUDA0``), UUIDs or UUID prefixes (``GPU-c4a646d7``, ``MIG-...``). Empty, ``-1``,
``na``, ``none``, ``void`` and ``10000`` (what HTCondor sets for a slot without GPUs) mean no
GPU at all. As CUDA does, the list ends at the first entry that names no device.

Indices count the vendor's physical GPUs in PCI order (nvidia-smi's index): what CUDA uses with
``CUDA_DEVICE_ORDER=PCI_BUS_ID``, or on a node of identical GPUs. An index or UUID of a GPU in
MIG mode selects its MIG instances, as HTCondor does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from glidein_plugins.gpu.common import Enumerated, uuid_key

# the variables that restrict each vendor's devices, the first set one applies
VARIABLES: dict[str, tuple[str, ...]] = {
    "nvidia": ("CUDA_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL", "_CONDOR_AssignedGPUs"),
    "amd": ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL",
            "CUDA_VISIBLE_DEVICES", "_CONDOR_AssignedGPUs"),
    "other": ("GPU_DEVICE_ORDINAL", "_CONDOR_AssignedGPUs"),
}
NONE_VALUES = frozenset({"", "-1", "na", "n/a", "none", "void", "10000"})
_NAMED_INDEX = re.compile(r"^(?:CUDA|OCL|GPU|HIP)?(\d+)$", re.IGNORECASE)


@dataclass(frozen=True)
class Assignment:
    """One vendor's restriction: the variable that sets it ('' for none) and its value."""

    variable: str = ""
    value: str = ""

    @property
    def restricted(self) -> bool:
        return bool(self.variable)

    @property
    def nothing(self) -> bool:
        """The value says: no GPU at all."""
        return self.restricted and self.value.strip().lower() in NONE_VALUES

    @property
    def tokens(self) -> list[str]:
        return [] if self.nothing else [item.strip() for item in self.value.split(",")]

    def describe(self) -> str:
        return f"{self.variable}={self.value}" if self.restricted else "no restriction"


def for_vendor(environ: Mapping[str, str], vendor: str) -> Assignment:
    """The assignment that applies to ``vendor``'s devices."""
    for variable in VARIABLES.get(vendor, VARIABLES["other"]):
        if variable in environ:
            return Assignment(variable, environ[variable])
    return Assignment()


def _matches(token: str, item: Enumerated) -> bool:
    named = _NAMED_INDEX.match(token)
    if named:
        return int(named.group(1)) == item.index
    key = uuid_key(token)
    if not key:
        return False
    return any(uuid_key(uuid).startswith(key) for uuid in (item.device.uuid, item.parent) if uuid)


def select(assignment: Assignment, devices: Sequence[Enumerated]) -> tuple[list[Enumerated], str]:
    """The devices the assignment leaves usable, in its order, and a note ('' when there is
    nothing to say). Tokens naming no device are reported; the list ends at the first one."""
    if not assignment.restricted:
        return list(devices), ""
    if assignment.nothing:
        return [], f"{assignment.describe()} assigns no GPU"
    chosen: list[Enumerated] = []
    unmatched = ""
    for token in assignment.tokens:
        found = [item for item in devices if _matches(token, item) and item not in chosen]
        if not found:
            if not any(_matches(token, item) for item in devices):
                unmatched = token
                break
            continue
        chosen += found
    note = (f"{assignment.describe()}: {len(chosen)} of {len(devices)} "
            f"device{'s' if len(devices) != 1 else ''} usable")
    if unmatched:
        note += (f"; {unmatched!r} names no device found here, so (as CUDA does) the entries "
                 "from it on are ignored")
    return chosen, note
