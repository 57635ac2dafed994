"""Live accelerator figures (TPU duty cycle and HBM use) when libtpu is present.

On a TPU VM, libtpu's monitoring SDK reports per-chip metrics as lists of strings
(`tpumonitoring.get_metric(name).data()`). Elsewhere there is nothing to read, and the
figures are absent — never reported as zero.
"""

from __future__ import annotations

import importlib
from typing import Any

METRICS = ("duty_cycle_pct", "hbm_capacity_usage", "hbm_capacity_total", "tensorcore_util")


def load_monitoring() -> Any | None:
    try:
        return importlib.import_module("libtpu.sdk.tpumonitoring")
    except Exception:  # not a TPU VM, or a libtpu without the SDK
        return None


def _floats(raw: Any) -> list[float]:
    values = []
    for item in raw if isinstance(raw, (list, tuple)) else [raw]:
        try:
            values.append(float(str(item).strip().strip("'\"")))
        except ValueError:
            continue
    return values


def read_device_figures(monitoring: Any, chips: list[int] | None = None) -> dict[str, Any] | None:
    """Averages/sums over `chips` (all when None); None when nothing could be read."""
    try:
        supported = set(monitoring.list_supported_metrics())
    except Exception:
        supported = set(METRICS)
    raw: dict[str, list[float]] = {}
    for name in METRICS:
        if name not in supported:
            continue
        try:
            raw[name] = _floats(monitoring.get_metric(name).data())
        except Exception:
            continue

    def pick(values: list[float]) -> list[float]:
        if chips is None:
            return values
        return [values[i] for i in chips if 0 <= i < len(values)]

    figures: dict[str, Any] = {}
    duty = pick(raw.get("duty_cycle_pct", []))
    if duty:
        figures["duty_cycle_pct"] = round(sum(duty) / len(duty), 1)
    used, total = pick(raw.get("hbm_capacity_usage", [])), pick(raw.get("hbm_capacity_total", []))
    if used:
        figures["hbm_used_gib"] = round(sum(used) / 2**30, 2)
    if used and total and sum(total) > 0:
        figures["hbm_used_pct"] = round(100.0 * sum(used) / sum(total), 1)
    util = pick(raw.get("tensorcore_util", []))
    if util:
        figures["tensorcore_util_pct"] = round(sum(util) / len(util), 1)
    if figures:
        figures["chips"] = len(duty or used or util)
    return figures or None


def lane_chips(env: dict[str, str]) -> list[int] | None:
    """The chips a lane is pinned to with TPU_VISIBLE_DEVICES, or None (all)."""
    value = env.get("TPU_VISIBLE_DEVICES", "").strip()
    if not value:
        return None
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        return None
