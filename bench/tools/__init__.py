"""Maintainers' tools that look at the harness from above: they may import every unit of
``bench``, and nothing in ``bench`` imports them.

- ``function_catalogue``: regenerates the operator catalogue by tracing every model workload
  (``invoke function-catalogue``, docs/function.md);
- ``model_facts``: regenerates the model facts from the models (``invoke model-facts``,
  docs/report.md);
- ``telemetry_overhead``: what the telemetry sampler costs a workload (``invoke
  bench-telemetry``, docs/telemetry.md).

Each needs the workloads and the suites together, which is why it lives here and not beside
the data it writes or the part it measures (docs/architecture.md, "The layers").
"""
