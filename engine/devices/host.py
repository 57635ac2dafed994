"""The engine's view of the host's devices: the platform, the slots, the agent shell's environment.

`device_layout(config)` detects what `[devices]` leaves to detection and checks what only
this host can tell (fewer chips than the slots name); a problem is a ConfigError naming the
key, raised before any lane starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autoresearch_tui.engine.config import Config, config_error
from autoresearch_tui.engine.devices.detect import HostDevices, cpu_core_ids, detect
from autoresearch_tui.engine.devices.slots import Slot, SlotLayoutError, layout

AGENT_SHELL_NO_DEVICE = {"JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""}
"""What the agent's own shell gets unless [devices] agent_shell_device = true: a stray
`python -c "import jax; jax.devices()"` must not grab the TPU a leased run is using."""


@dataclass(frozen=True)
class DeviceLayout:
    host: HostDevices
    slots: list[Slot]

    @property
    def platform(self) -> str:
        return self.host.platform

    def to_dict(self) -> dict:
        return {"platform": self.host.platform, "chips": self.host.chips, "chips_from": self.host.source,
                "slots": [{"index": s.index, "chips": list(s.chips)} for s in self.slots]}


def device_layout(config: Config, *, dev: Path = Path("/dev"), nvidia_smi: str | None = None,
                  cpu_ids: list[int] | None = None) -> DeviceLayout:
    devices = config.devices
    host = detect(devices.platform, devices.chips, dev=dev, nvidia_smi=nvidia_smi)
    try:
        slots = layout(devices.slots, host, cpu_ids if cpu_ids is not None else cpu_core_ids())
    except SlotLayoutError as exc:
        raise config_error(config, exc.key, str(exc)) from None
    return DeviceLayout(host, slots)
