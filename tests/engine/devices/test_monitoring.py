"""Device figures: read from libtpu's monitoring SDK on a TPU VM, absent elsewhere.

There is no TPU here, so the SDK module is replaced by a stand-in that returns data in the
SDK's documented shape (lists of strings, one per chip). That is the only mock."""

from autoresearch_tui.engine.devices.monitoring import lane_chips, load_monitoring, read_device_figures


class FakeTpuMonitoring:  # stands in for libtpu.sdk.tpumonitoring (needs a TPU)
    DATA = {"duty_cycle_pct": ["40.0", "60.0", "80.0", "20.0"],
            "hbm_capacity_usage": [str(8 * 2**30)] * 4,
            "hbm_capacity_total": [str(16 * 2**30)] * 4,
            "tensorcore_util": ["10", "20", "30", "40"]}

    def list_supported_metrics(self):
        return list(self.DATA)

    def get_metric(self, name):
        data = self.DATA[name]
        return type("Metric", (), {"data": lambda self: data})()


def test_figures_for_all_chips_and_for_a_lanes_chips():
    every = read_device_figures(FakeTpuMonitoring())
    assert every == {"duty_cycle_pct": 50.0, "hbm_used_gib": 32.0, "hbm_used_pct": 50.0,
                     "tensorcore_util_pct": 25.0, "chips": 4}
    pinned = read_device_figures(FakeTpuMonitoring(), lane_chips({"TPU_VISIBLE_DEVICES": "1,2"}))
    assert pinned["duty_cycle_pct"] == 70.0 and pinned["hbm_used_gib"] == 16.0 and pinned["chips"] == 2


def test_garbage_from_the_sdk_gives_no_figures_rather_than_zeros():
    class Broken(FakeTpuMonitoring):
        def get_metric(self, name):
            return type("Metric", (), {"data": lambda self: ["n/a", None]})()

    assert read_device_figures(Broken()) is None
    assert lane_chips({"TPU_VISIBLE_DEVICES": "x"}) is None and lane_chips({}) is None


def test_on_this_cpu_machine_there_is_nothing_to_read():
    assert load_monitoring() is None  # so snapshots carry no "device" key at all
