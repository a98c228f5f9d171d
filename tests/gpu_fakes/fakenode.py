"""A fake worker node for the GPU tests: driver files under a temporary root (``/proc``,
``/sys``, ``/dev``, ``/etc``, ``/opt``), fake tools on a private PATH.

The PATH holds only the fakes asked for and the few system tools they need (so a real
``nvidia-smi`` on the test machine can never answer). Scenarios and recorded-style outputs live
next to this file (see README.md for what each is modelled on).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from glidein_plugins.gpu.common import Host
from glidein_plugins.node import commands

FAKES = Path(__file__).resolve().parent
SYSTEM_TOOLS = ("stat", "cat", "sleep", "sh")
NVIDIA_VERSION = ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  {driver}  "
                  "Thu Feb 22 01:44:30 UTC 2024\n"
                  "GCC version:  gcc version 11.4.1 20231218 (Red Hat 11.4.1-3) (GCC) \n")
NVIDIA_INFORMATION = ("Model: \t\t {name}\nIRQ:   \t\t {irq}\nGPU UUID: \t {uuid}\n"
                      "Video BIOS: \t 96.00.99.00.01\nBus Type: \t PCIe\nDMA Size: \t 52 bits\n"
                      "DMA Mask: \t 0xfffffffffffff\nBus Location: \t {bus}\n"
                      "Device Minor: \t {minor}\nGPU Firmware: \t {driver}\n"
                      "GPU Excluded:\t {excluded}\n")
KFD_CPU = "cpu_cores_count 64\nsimd_count 0\nmem_banks_count 1\ngfx_target_version 0\n" \
          "vendor_id 0\ndevice_id 0\nlocation_id 0\ndomain 0\ndrm_render_minor 0\n"
KFD_GPU = ("cpu_cores_count 0\nsimd_count 440\nmem_banks_count 1\ncaches_count 249\n"
           "max_waves_per_simd 8\nlds_size_in_kb 64\nwave_front_size 64\narray_count 8\n"
           "simd_arrays_per_engine 1\ncu_per_simd_array 14\nsimd_per_cu 4\n"
           "gfx_target_version {gfx}\nvendor_id 4098\ndevice_id 29704\nlocation_id {location}\n"
           "domain 0\ndrm_render_minor {render}\nhive_id 0\nnum_sdma_engines 2\n"
           "local_mem_size 0\nfw_version 78\nunique_id {unique}\nnum_xcc 1\n"
           "max_engine_clk_ccompute 2200\n")
KFD_BANK = "heap_type 1\nsize_in_bytes {size}\nflags 0\nwidth 4096\nmem_clk_max 1600\n"


def scenario(name: str) -> dict[str, Any]:
    """A fake nvidia-smi scenario (nvidia/NAME.json)."""
    with open(FAKES / "nvidia" / f"{name}.json", encoding="utf-8") as handle:
        return json.load(handle)  # type: ignore[no-any-return]


class FakeNode:
    """A node under ``base``: ``root`` (its files), ``bin`` (its tools), ``environ``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "root"
        self.bin = base / "bin"
        system = base / "sysbin"
        for directory in (self.root / "dev", self.bin, system):
            directory.mkdir(parents=True)
        for tool in SYSTEM_TOOLS:
            found = shutil.which(tool)
            assert found, f"the tests need {tool}"
            (system / tool).symlink_to(found)
        (system / "python3").symlink_to(sys.executable)
        self.environ: dict[str, str] = {"PATH": f"{self.bin}:{system}", "HOME": str(base),
                                        "LC_ALL": "C"}

    # -- tools ---------------------------------------------------------------------------

    def tool(self, name: str, directory: Path | None = None, **env: str) -> Path:
        """Put the fake ``name`` in ``directory`` (default: on PATH), with its settings."""
        directory = directory or self.bin
        directory.mkdir(parents=True, exist_ok=True)
        (directory / name).symlink_to(FAKES / name)
        self.environ.update(env)
        return directory / name

    def nvidia_smi(self, name: str, log: bool = False) -> None:
        env = {"FAKE_NVIDIA_SMI": str(FAKES / "nvidia" / f"{name}.json")}
        if log:
            env["FAKE_NVIDIA_SMI_LOG"] = str(self.base / "nvidia-smi.log")
        self.tool("nvidia-smi", **env)

    def nvidia_smi_calls(self) -> list[str]:
        path = self.base / "nvidia-smi.log"
        return path.read_text().splitlines() if path.exists() else []

    def condor(self, output: str, exit_code: int = 0, hang: bool = False,
               condor_dir: bool = False) -> Path:
        """condor_gpu_discovery printing condor/OUTPUT.txt; in CONDOR_DIR/libexec (returned)
        or on PATH."""
        env = {"FAKE_CONDOR_GPU_DISCOVERY": str(FAKES / "condor" / f"{output}.txt"),
               "FAKE_CONDOR_GPU_DISCOVERY_EXIT": str(exit_code),
               "FAKE_CONDOR_GPU_DISCOVERY_ENV_LOG": str(self.base / "condor-env.log")}
        if hang:
            env["FAKE_CONDOR_GPU_DISCOVERY_HANG"] = "1"
        where = self.base / "condor" / "libexec" if condor_dir else None
        self.tool("condor_gpu_discovery", where, **env)
        return self.base / "condor"

    def rocm_smi(self, output: str = "mi250x", exit_code: int = 0) -> None:
        """rocm-smi in /opt/rocm/bin of the node, printing rocm/OUTPUT.json."""
        self.tool("rocm-smi", self.root / "opt" / "rocm" / "bin",
                  FAKE_ROCM_SMI=str(FAKES / "rocm" / f"{output}.json"),
                  FAKE_ROCM_SMI_EXIT=str(exit_code))

    def ldconfig(self) -> None:
        self.tool("ldconfig", FAKE_LDCONFIG=str(FAKES / "ld.so.cache.txt"))

    # -- files ---------------------------------------------------------------------------

    def file(self, path: str, text: str = "") -> Path:
        target = self.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return target

    def dev(self, *names: str) -> None:
        for name in names:
            self.file(f"/dev/{name}")

    def nvidia_driver(self, name: str, minors: list[int] | None = None, proc: bool = True,
                      excluded: tuple[int, ...] = ()) -> None:
        """The kernel driver's files for scenario ``name``'s GPUs: /proc/driver/nvidia and
        /dev/nvidia<N> (all GPUs, or the ``minors`` given)."""
        data = scenario(name)
        driver = data.get("driver_version", "550.54.15")
        gpus = data.get("gpus", [])
        if proc:
            self.file("/proc/driver/nvidia/version", NVIDIA_VERSION.format(driver=driver))
            for minor, gpu in enumerate(gpus):
                bus = "0000:" + gpu["pci.bus_id"].split(":", 1)[1].lower()
                self.file(f"/proc/driver/nvidia/gpus/{bus}/information", NVIDIA_INFORMATION.format(
                    name=gpu["name"], irq=200 + minor, uuid=gpu["uuid"], bus=bus, minor=minor,
                    driver=driver, excluded="Yes" if minor in excluded else "No"))
        self.dev("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools",
                 *(f"nvidia{minor}" for minor in (range(len(gpus)) if minors is None
                                                  else minors)))

    def amd_driver(self, gpus: int = 2, kfd: bool = True, render: bool = True) -> None:
        """The amdgpu driver's KFD topology (a CPU node, then ``gpus`` MI250X GCDs, gfx90a, at
        the bus ids rocm/mi250x.json names), /dev/kfd and the render nodes."""
        self.file("/sys/module/amdgpu/version", "6.3.6\n")
        nodes = "/sys/class/kfd/kfd/topology/nodes"
        self.file(f"{nodes}/0/properties", KFD_CPU)
        uniques = (0x4FCB7A2D9E31C8A5, 0x91D3E6B07A2F4C18, 0x1A2B3C4D5E6F7081, 0x2B3C4D5E6F708192)
        for number in range(1, gpus + 1):
            self.file(f"{nodes}/{number}/properties", KFD_GPU.format(
                gfx=90010, location=(0xC1 + 5 * (number - 1)) << 8, render=127 + number,
                unique=uniques[number - 1]))
            self.file(f"{nodes}/{number}/mem_banks/0/properties",
                      KFD_BANK.format(size=68702699520))
            if render:
                self.file(f"/dev/dri/renderD{127 + number}")
        if kfd:
            self.dev("kfd")

    def opencl(self, **icds: str) -> None:
        for vendor, library in icds.items():
            self.file(f"/etc/OpenCL/vendors/{vendor}.icd", library + "\n")

    def host(self, timeout: float = 10.0) -> Host:
        return Host(commands.run, dict(self.environ), str(self.root), timeout)

    def environment(self, **extra: str) -> dict[str, str]:
        return {**self.environ, **extra}

    def exists(self, path: str) -> bool:
        return os.path.lexists(self.root / path.lstrip("/"))
