"""Which accelerator this host has, and how many chips (`[devices] platform = "auto"`, `chips = 0`).

- TPU: one `/dev/accel<N>` per chip (v4, v5e, v6e VMs), or VFIO groups `/dev/vfio/<N>` (v5p
  and newer images); the `/dev/vfio/vfio` container node is not a chip.
- GPU: one line per GPU in `nvidia-smi -L`.
- CPU: the cores this process may run on (`os.sched_getaffinity`), the "chips" CPU slots split.

Detection reads only local files and one local command; every input is a parameter so tests
can point it at a fake /dev under tmp_path (there is no TPU or GPU on the test machine).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

PLATFORMS = ("tpu", "gpu", "cpu")
NVIDIA_SMI_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class HostDevices:
    platform: str
    chips: int
    source: str
    """How it was found, for messages: "/dev/accel*", "nvidia-smi -L", "cpu cores", "config"."""


def tpu_chips(dev: Path = Path("/dev")) -> int:
    accel = [p for p in dev.glob("accel*") if re.fullmatch(r"accel\d+", p.name)]
    if accel:
        return len(accel)
    vfio = dev / "vfio"
    return len([p for p in vfio.glob("*") if p.name.isdigit()]) if vfio.is_dir() else 0


def gpu_chips(nvidia_smi: str | None = None) -> int:
    command = nvidia_smi or shutil.which("nvidia-smi")
    if not command:
        return 0
    try:
        proc = subprocess.run([command, "-L"], capture_output=True, text=True,
                              timeout=NVIDIA_SMI_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return 0
    if proc.returncode != 0:
        return 0
    return sum(1 for line in proc.stdout.splitlines() if re.match(r"GPU \d+:", line.strip()))


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cpu_core_ids() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def detect(platform: str = "auto", chips: int = 0, *, dev: Path = Path("/dev"),
           nvidia_smi: str | None = None) -> HostDevices:
    """The host's platform and chip count; configured values win over detection."""
    if platform == "auto":
        if tpu_chips(dev):
            platform = "tpu"
        elif gpu_chips(nvidia_smi):
            platform = "gpu"
        else:
            platform = "cpu"
    if chips:
        return HostDevices(platform, chips, "config")
    if platform == "tpu":
        return HostDevices(platform, tpu_chips(dev), f"{dev}/accel* or {dev}/vfio/*")
    if platform == "gpu":
        return HostDevices(platform, gpu_chips(nvidia_smi), "nvidia-smi -L")
    return HostDevices(platform, cpu_cores(), "cpu cores")
