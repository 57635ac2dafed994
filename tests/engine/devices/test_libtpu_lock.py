"""The stale libtpu lockfile rule, on a fake lockfile and fake device nodes under tmp_path, with
real processes holding them open (there is no TPU here: the paths are parameters)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from autoresearch_tui.engine.devices.libtpu_lock import device_holders, remove_stale_lock, tpu_device_paths


def setup(tmp_path: Path) -> tuple[Path, Path]:
    dev = tmp_path / "dev"
    (dev / "vfio").mkdir(parents=True)
    for name in ("accel0", "accel1", "vfio/0", "null"):
        (dev / name).write_text("")
    lock = tmp_path / "libtpu_lockfile"
    lock.write_text("")
    return dev, lock


def hold_open(path: Path) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", f"f = open({str(path)!r}); print('open', flush=True); "
                                "import time; time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "open"
    return process


def test_the_lock_stays_while_a_process_holds_a_tpu_device_and_goes_once_none_does(tmp_path):
    dev, lock = setup(tmp_path)
    assert tpu_device_paths(dev) == {str(dev / "accel0"), str(dev / "accel1"), str(dev / "vfio/0")}
    holder = hold_open(dev / "accel1")
    try:
        assert holder.pid in device_holders(tpu_device_paths(dev))
        note = remove_stale_lock(lock, dev)
        assert lock.exists() and note == f"kept {lock}: the TPU is held by pid {holder.pid}"
    finally:
        holder.kill()
        holder.wait()
    assert remove_stale_lock(lock, dev) == f"removed stale {lock} (no process holds a TPU device)"
    assert not lock.exists()
    assert remove_stale_lock(lock, dev) is None  # nothing to do


def test_other_open_files_do_not_count_as_holding_the_tpu(tmp_path):
    dev, lock = setup(tmp_path)
    holder = hold_open(dev / "null")
    try:
        assert remove_stale_lock(lock, dev).startswith("removed")
    finally:
        holder.kill()
        holder.wait()


def test_a_fake_proc_tree_is_read_the_same_way(tmp_path):
    dev, lock = setup(tmp_path)
    proc = tmp_path / "proc"
    (proc / "4242" / "fd").mkdir(parents=True)
    (proc / "4242" / "fd" / "7").symlink_to(dev / "vfio" / "0")
    (proc / "self").mkdir()
    assert device_holders(tpu_device_paths(dev), proc) == [4242]
    assert "held by pid 4242" in remove_stale_lock(lock, dev, proc)
