"""Inference workloads whose service time is a known sleep, for the scenario and streams tests:
what LoadGen and the concurrent loop measure on them can be worked out by hand."""

from __future__ import annotations

import threading
import time

import torch

from bench.workload import Workload, register


@register
class SleepyServe(Workload):
    """Each batch sleeps ``service_s`` plus ``per_sample_s`` per row; it records every row
    it served (``served``: the sample values), so a test can count them."""

    name = "test-serve"
    description = "sleeps a known time per batch (scenario and streams tests)"
    group = "cv"
    modes = ("infer",)
    item_unit = "images"
    input_attrs = ("x",)
    configs = {"small": {"batch_size": 4, "service_s": 0.01, "per_sample_s": 0.0,
                         "streams": 1}}

    def setup(self) -> None:
        self.x = torch.arange(self.params["batch_size"], dtype=torch.float32)
        self.served: list[int] = []
        self.threads: list[bool] = []  # per batch: whether the main thread ran it
        self.lock = threading.Lock()

    def step(self) -> int:
        n = int(self.x.shape[0])
        time.sleep(self.params["service_s"] + self.params["per_sample_s"] * n)
        with self.lock:
            self.served.append(n)
            self.threads.append(threading.current_thread() is threading.main_thread())
        return n
