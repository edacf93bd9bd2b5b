"""Inference scenarios as MLPerf runs them, driven by MLPerf's own LoadGen.

``rules`` holds the run rules (MLPerf's values as data in ``mlperf.yaml``), ``sut`` the system
under test LoadGen drives (dynamic batching, one worker per stream), ``samples`` the sample
library of a classic workload, ``search`` the Server's search for its highest valid QPS,
``loadgen`` the shell around LoadGen itself and ``measure`` one repeat of a scenario entry.
docs/scenarios.md explains the scenarios, their metrics and what the small suites scale.
"""
