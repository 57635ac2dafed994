"""Benchmark slots: how the host's chips are split, and the environment a run on a slot gets.

`[devices] slots` is a count (the chips split evenly, whole chips each) or explicit chip
lists (`[[0, 1, 2, 3], [4, 5, 6, 7]]`). Every leased run's environment names its slot on
any platform (`AUTORESEARCH_SLOT`, `AUTORESEARCH_CHIPS`), plus the platform's own variables:

- TPU: the variables that partition a single-host TPU VM into independent libtpu processes
  (TPU_VISIBLE_CHIPS, the process/chip bounds, a port per slot). The bounds per slot size
  are in `TPU_CHIPS_PER_PROCESS_BOUNDS`, the one table of them.
- GPU: CUDA_VISIBLE_DEVICES.
- CPU: the slot's cores (the runner pins the run's process to them; `cpu_affinity`).
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass

from autoresearch_tui.engine.devices.detect import HostDevices

# Chips of one slot -> TPU_CHIPS_PER_PROCESS_BOUNDS (x,y,z of the slot's chip grid).
# 1 and 2 chips agree across sources (Ray's TPU manager sets these two). For 4 chips on a
# v5e-8/v6e-8, public sources disagree (`2,2,1` here, `1,4,1` in one public script): this is
# UNVERIFIED ON HARDWARE until someone runs a 4-chip slot on a TPU. A slot holding every chip
# of the host (the default, one slot) gets no partition variables at all: libtpu then takes
# the whole host, as it does with no autoresearch-tui around.
TPU_CHIPS_PER_PROCESS_BOUNDS = {1: "1,1,1", 2: "1,2,1", 4: "2,2,1"}
TPU_BASE_PORT = 8476
"""TPU_PROCESS_PORT of slot i is TPU_BASE_PORT + i: each libtpu process needs its own."""


class SlotLayoutError(ValueError):
    """A [devices] value that cannot work on this host; `key` names it (devices.slots)."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Slot:
    index: int
    chips: tuple[int, ...]
    platform: str
    cores: tuple[int, ...] = ()
    """CPU only: the cpu ids the run is pinned to (chips index the cores this engine may use)."""
    whole_host: bool = False
    """The slot holds every chip of the host (then TPU runs get no partition variables)."""

    @property
    def chips_text(self) -> str:
        return ",".join(str(c) for c in self.chips)

    def describe(self) -> str:
        noun = "core" if self.platform == "cpu" else "chip"
        return f"slot {self.index} ({noun}{'s' if len(self.chips) != 1 else ''} {self.chips_text})"


def check_slots(slots: int | list[list[int]], chips: int) -> None:
    """Static checks (no detection); raises ValueError with a message for devices.slots."""
    if isinstance(slots, int):
        if slots < 1:
            raise ValueError("a slot count must be at least 1")
        if chips and slots > chips:
            raise ValueError(f"{slots} slots on a host with {chips} chips")
        if chips and chips % slots:
            raise ValueError(f"{slots} slots do not divide {chips} chips evenly (whole chips per slot)")
        return
    if not slots:
        raise ValueError("an empty list: give a slot count or at least one chip list")
    owner: dict[int, int] = {}
    for index, chip_list in enumerate(slots):
        if not chip_list:
            raise ValueError(f"slot {index} has no chips")
        for chip in chip_list:
            if chip < 0:
                raise ValueError(f"slot {index}: chip {chip} is negative")
            if chips and chip >= chips:
                raise ValueError(f"slot {index}: chip {chip} is out of range (chips = {chips}: 0..{chips - 1})")
            if chip in owner:
                where = "twice in slot" if owner[chip] == index else f"in slots {owner[chip]} and"
                raise ValueError(f"chip {chip} is {where} {index}")
            owner[chip] = index


def layout(slots: int | list[list[int]], host: HostDevices, cpu_ids: list[int] | None = None) -> list[Slot]:
    """The slots on this host; SlotLayoutError when the config cannot work here."""
    platform, chips = host.platform, host.chips
    if chips < 1:
        raise SlotLayoutError("devices.chips", f"no {platform} chips found ({host.source}); "
                              "set [devices] chips, or platform = \"cpu\"")
    try:
        check_slots(slots, chips)
    except ValueError as exc:
        raise SlotLayoutError("devices.slots", f"{exc} ({platform}, chips from {host.source})") from None
    if isinstance(slots, int):
        size = chips // slots
        lists = [list(range(i * size, (i + 1) * size)) for i in range(slots)]
    else:
        lists = [sorted(chip_list) for chip_list in slots]
    if platform == "tpu":
        for index, chip_list in enumerate(lists):
            if len(chip_list) not in TPU_CHIPS_PER_PROCESS_BOUNDS and len(chip_list) != chips:
                sizes = ", ".join(str(n) for n in TPU_CHIPS_PER_PROCESS_BOUNDS)
                raise SlotLayoutError("devices.slots", f"slot {index} has {len(chip_list)} TPU chips; "
                                      f"a TPU slot has {sizes} chips, or all {chips}")
    out = []
    for index, chip_list in enumerate(lists):
        cores: tuple[int, ...] = ()
        whole_host = len(chip_list) == chips
        if platform == "cpu" and cpu_ids is not None and not whole_host:
            if max(chip_list) >= len(cpu_ids):
                raise SlotLayoutError("devices.slots", f"slot {index}: core {max(chip_list)} is out of "
                                      f"range (this engine may use {len(cpu_ids)} cores)")
            cores = tuple(cpu_ids[c] for c in chip_list)
        out.append(Slot(index, tuple(chip_list), platform, cores, whole_host=whole_host))
    return out


def slot_env(slot: Slot) -> dict[str, str]:
    """The variables a run on `slot` gets (added to the lane's run environment)."""
    env = {"AUTORESEARCH_SLOT": str(slot.index), "AUTORESEARCH_CHIPS": slot.chips_text}
    if slot.platform == "tpu" and not slot.whole_host:
        port = TPU_BASE_PORT + slot.index
        env.update({
            "TPU_VISIBLE_CHIPS": slot.chips_text,
            "TPU_PROCESS_BOUNDS": "1,1,1",
            "TPU_CHIPS_PER_PROCESS_BOUNDS": TPU_CHIPS_PER_PROCESS_BOUNDS[len(slot.chips)],
            "TPU_PROCESS_PORT": str(port),
            "TPU_PROCESS_ADDRESSES": f"localhost:{port}",
            "CLOUD_TPU_TASK_ID": "0",
        })
    elif slot.platform == "gpu":
        env["CUDA_VISIBLE_DEVICES"] = slot.chips_text
    return env


def cpu_affinity(slot: Slot) -> tuple[int, ...] | None:
    """The cores to pin a CPU run to: only when the cores are split (not the whole host)."""
    if slot.platform != "cpu" or slot.whole_host or not slot.cores:
        return None
    return slot.cores


def affinity_prefix(cores: tuple[int, ...] | None) -> list[str]:
    """A command prefix that pins the run (and every process it starts) to `cores`.

    util-linux `taskset` where it exists, else this interpreter setting the affinity and
    exec'ing the command; [] when there is nothing to pin."""
    if not cores:
        return []
    cpu_list = ",".join(str(c) for c in cores)
    taskset = shutil.which("taskset")
    if taskset:
        return [taskset, "-c", cpu_list]
    code = ("import os, sys; os.sched_setaffinity(0, {int(c) for c in sys.argv[1].split(',')}); "
            "os.execvp(sys.argv[2], sys.argv[2:])")
    return [sys.executable, "-c", code, cpu_list]
