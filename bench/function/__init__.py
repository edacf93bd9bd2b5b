"""Function before performance: does the device compute the right numbers, and which
operators does it lack (docs/function.md).

- ``trace``: which ATen operators a workload executes (a dispatch mode on the CPU);
- ``catalogue``: those operators plus a curated long tail, as generated data;
- ``args``, ``replay``, ``compare``: one call replayed on the device and on the CPU reference,
  and the verdict (tolerances per dtype, result classes);
- ``worker``, ``runner``: the cases in child processes, so a crash loses nothing else;
- ``model``: a model workload's outputs and gradients against the CPU reference;
- ``longtail``: the long-tail operators, for the catalogue and for timing.
"""
