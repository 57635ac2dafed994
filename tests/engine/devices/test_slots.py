"""[devices]: detection, the slot layout, each platform's environment, and bad values as one line.

There is no TPU or GPU on this machine: detection is pointed at fake /dev trees under tmp_path
and at a fake `nvidia-smi` script (the only stand-ins); everything else is the real code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from autoresearch_tui.engine.config import ConfigError, parse_config
from autoresearch_tui.engine.devices.detect import HostDevices, detect
from autoresearch_tui.engine.devices.host import device_layout
from autoresearch_tui.engine.devices.slots import (
    Slot, SlotLayoutError, affinity_prefix, cpu_affinity, layout, slot_env,
)

LANES = '[[lanes]]\nname = "a"\n'


def config(devices: str, tmp_path: Path):
    path = tmp_path / "autoresearch.toml"
    text = f"{LANES}\n[devices]\n{devices}\n"
    path.write_text(text)
    return parse_config(text, path)


def fake_dev(tmp_path: Path, *names: str) -> Path:
    dev = tmp_path / "dev"
    for name in names:
        (dev / name).parent.mkdir(parents=True, exist_ok=True)
        (dev / name).write_text("")
    dev.mkdir(parents=True, exist_ok=True)
    return dev


def fake_nvidia_smi(tmp_path: Path, gpus: int) -> str:
    script = tmp_path / "nvidia-smi"
    lines = "".join(f"GPU {i}: NVIDIA H100 (UUID: GPU-{i})\\n" for i in range(gpus))
    script.write_text(f"#!/bin/sh\nprintf '{lines}'\n")
    script.chmod(0o755)
    return str(script)


def test_detection_finds_tpu_chips_gpus_or_falls_back_to_cpu_cores(tmp_path):
    tpu = fake_dev(tmp_path / "t", *(f"accel{i}" for i in range(8)))
    assert detect(dev=tpu) == HostDevices("tpu", 8, f"{tpu}/accel* or {tpu}/vfio/*")
    vfio = fake_dev(tmp_path / "v", "vfio/vfio", "vfio/0", "vfio/1", "vfio/2", "vfio/3")
    assert detect(dev=vfio).chips == 4  # the vfio container node is not a chip
    empty = fake_dev(tmp_path / "e")
    gpu = detect(dev=empty, nvidia_smi=fake_nvidia_smi(tmp_path, 2))
    assert (gpu.platform, gpu.chips) == ("gpu", 2)
    cpu = detect(dev=empty, nvidia_smi=str(tmp_path / "missing"))
    assert (cpu.platform, cpu.chips) == ("cpu", len(os.sched_getaffinity(0)))
    assert detect("tpu", 8, dev=empty) == HostDevices("tpu", 8, "config")  # configured wins


def test_a_count_splits_the_chips_evenly_and_lists_are_taken_as_given():
    host = HostDevices("tpu", 8, "config")
    assert [s.chips for s in layout(2, host)] == [(0, 1, 2, 3), (4, 5, 6, 7)]
    assert [s.chips for s in layout(8, host)] == [(i,) for i in range(8)]
    assert [s.chips for s in layout([[6, 7], [0, 1]], host)] == [(6, 7), (0, 1)]
    only = layout(1, host)
    assert len(only) == 1 and only[0].whole_host and only[0].chips == tuple(range(8))


def test_tpu_slot_environment_partitions_the_host():
    first, second = layout(2, HostDevices("tpu", 8, "config"))
    assert slot_env(second) == {
        "AUTORESEARCH_SLOT": "1", "AUTORESEARCH_CHIPS": "4,5,6,7",
        "TPU_VISIBLE_CHIPS": "4,5,6,7", "TPU_PROCESS_BOUNDS": "1,1,1",
        "TPU_CHIPS_PER_PROCESS_BOUNDS": "2,2,1", "TPU_PROCESS_PORT": "8477",
        "TPU_PROCESS_ADDRESSES": "localhost:8477", "CLOUD_TPU_TASK_ID": "0",
    }
    assert slot_env(first)["TPU_PROCESS_PORT"] == "8476"
    pairs = layout(4, HostDevices("tpu", 8, "config"))
    assert [slot_env(s)["TPU_CHIPS_PER_PROCESS_BOUNDS"] for s in pairs] == ["1,2,1"] * 4
    singles = layout(8, HostDevices("tpu", 8, "config"))
    assert {slot_env(s)["TPU_CHIPS_PER_PROCESS_BOUNDS"] for s in singles} == {"1,1,1"}
    assert len({slot_env(s)["TPU_PROCESS_PORT"] for s in singles}) == 8
    # One slot holding the whole host: libtpu's own default, no partition variables.
    (whole,) = layout(1, HostDevices("tpu", 8, "config"))
    assert slot_env(whole) == {"AUTORESEARCH_SLOT": "0", "AUTORESEARCH_CHIPS": "0,1,2,3,4,5,6,7"}


def test_gpu_and_cpu_slot_environments():
    gpu = layout(2, HostDevices("gpu", 4, "config"))
    assert [slot_env(s)["CUDA_VISIBLE_DEVICES"] for s in gpu] == ["0,1", "2,3"]
    cpu = layout(2, HostDevices("cpu", 4, "cpu cores"), cpu_ids=[4, 5, 6, 7])
    assert [cpu_affinity(s) for s in cpu] == [(4, 5), (6, 7)]  # chips index the usable cores
    assert slot_env(cpu[1]) == {"AUTORESEARCH_SLOT": "1", "AUTORESEARCH_CHIPS": "2,3"}
    (whole,) = layout(1, HostDevices("cpu", 4, "cpu cores"), cpu_ids=[4, 5, 6, 7])
    assert cpu_affinity(whole) is None  # one slot: nothing to split


def test_the_affinity_prefix_really_pins_the_process():
    cores = sorted(os.sched_getaffinity(0))[:1]
    prefix = affinity_prefix(tuple(cores))
    out = subprocess.run([*prefix, sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(cores)
    assert affinity_prefix(None) == []


@pytest.mark.parametrize("devices, expected", [
    ("chips = 8\nslots = 3", "devices.slots: 3 slots do not divide 8 chips evenly"),
    ("chips = 8\nslots = 16", "devices.slots: 16 slots on a host with 8 chips"),
    ("slots = [[0, 1], [1, 2]]", "devices.slots: chip 1 is in slots 0 and 1"),
    ("chips = 4\nslots = [[0, 4]]", "devices.slots: slot 0: chip 4 is out of range (chips = 4: 0..3)"),
    ("slots = 0", "devices.slots: a slot count must be at least 1"),
    ("slots = []", "devices.slots: an empty list"),
    ("slots = [[]]", "devices.slots: slot 0 has no chips"),
    ("slots = true", "devices.slots: expected a slot count (1, 2, ...) or chip lists"),
    ("slots = [[0.5]]", "devices.slots: expected a slot count (1, 2, ...) or chip lists"),
    ("slots = inf", "devices.slots: expected a slot count"),
    ('platform = "tpu6"', "devices.platform: Input should be 'auto', 'tpu', 'gpu' or 'cpu'"),
    ("chips = -2", "devices.chips: Input should be greater than or equal to 0"),
    ("chips = 99999999999", "devices.chips: Input should be less than or equal to 4096"),
    ("agent_shell_device = 1", "devices.agent_shell_device: Input should be a valid boolean"),
    ("slot = 2", "devices.slot: unknown key"),
])
def test_bad_devices_values_are_one_line_naming_the_key(tmp_path, devices, expected):
    with pytest.raises(ConfigError) as info:
        config(devices, tmp_path)
    assert expected in str(info.value) and "\n" not in str(info.value)
    key = expected.split(":")[0].split(".")[1]
    text = (tmp_path / "autoresearch.toml").read_text().splitlines()
    line = next(n for n, t in enumerate(text, 1) if t.startswith(f"{key} "))
    assert f"autoresearch.toml:{line}: " in str(info.value)  # the line of the key


def test_slots_beyond_the_detected_chips_are_a_config_error_at_engine_start(tmp_path):
    dev = fake_dev(tmp_path, "accel0", "accel1", "accel2", "accel3")
    four = config('platform = "tpu"\nslots = [[0, 1], [2, 3]]', tmp_path)
    assert [s.chips for s in device_layout(four, dev=dev).slots] == [(0, 1), (2, 3)]
    for devices, expected in [
        ('platform = "tpu"\nslots = 8', "devices.slots: 8 slots on a host with 4 chips"),
        ('platform = "tpu"\nslots = [[4, 5]]', "devices.slots: slot 0: chip 4 is out of range"),
        ('platform = "tpu"\nslots = [[0, 1, 2]]', "devices.slots: slot 0 has 3 TPU chips"),
        ('platform = "gpu"', "devices.chips: no gpu chips found"),
    ]:
        with pytest.raises(ConfigError) as info:
            device_layout(config(devices, tmp_path), dev=dev, nvidia_smi=str(tmp_path / "none"))
        assert expected in str(info.value) and str(tmp_path / "autoresearch.toml") in str(info.value)


@settings(max_examples=150, deadline=None)
@given(platform=st.sampled_from(["tpu", "gpu", "cpu"]), chips=st.integers(0, 16),
       slots=st.one_of(st.integers(-2, 20), st.lists(st.lists(st.integers(-1, 20), max_size=5), max_size=5)))
def test_every_devices_value_that_validates_gives_a_working_layout(tmp_path_factory, platform, chips, slots):
    tmp_path = tmp_path_factory.mktemp("cfg")
    text = f"platform = \"{platform}\"\nchips = {chips}\nslots = {slots!r}"
    try:
        cfg = config(text, tmp_path)
    except ConfigError as exc:
        assert "\n" not in str(exc) and "devices." in str(exc)
        return
    dev = fake_dev(tmp_path, *(f"accel{i}" for i in range(8)))
    try:
        result = device_layout(cfg, dev=dev, nvidia_smi=fake_nvidia_smi(tmp_path, 8), cpu_ids=list(range(16)))
    except ConfigError as exc:
        assert "\n" not in str(exc) and "devices." in str(exc)
        return
    used = [c for s in result.slots for c in s.chips]
    assert len(used) == len(set(used)) and all(0 <= c < result.host.chips for c in used)
    for slot in result.slots:
        env = slot_env(slot)
        assert env["AUTORESEARCH_SLOT"] == str(slot.index)
        assert all(isinstance(v, str) and "\x00" not in v for v in env.values())


def test_a_slot_describes_itself():
    assert Slot(1, (4, 5), "tpu").describe() == "slot 1 (chips 4,5)"
    assert Slot(0, (3,), "cpu").describe() == "slot 0 (core 3)"
    with pytest.raises(SlotLayoutError):
        layout(1, HostDevices("tpu", 0, "/dev/accel*"))
