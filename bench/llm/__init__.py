"""Large-model inference (docs/llm.md): decoder architectures as data, the memory estimate
and precision policy, the one generation routine every model shares, prompts, and the grid of
(concurrency x input/output tokens) points with its TTFT tiers.

The workloads themselves are thin classes in ``bench/workloads/llm.py`` and ``ldm.py``; this
package holds the logic they share, as small functions that tests check by hand-worked numbers.
Nothing here imports ``transformers`` at module import time (``bench list`` stays fast).
"""
