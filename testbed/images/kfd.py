"""The host's AMD KFD topology: which ``/dev/dri/renderD*`` node is HIP device N.

ROCm enumerates GPUs in the order of the GPU nodes of the KFD topology
(``/sys/class/kfd/kfd/topology/nodes/<n>/properties``: CPU nodes have no SIMDs and no render
minor). Passing a container ``/dev/kfd`` and only the render nodes of the selected GPUs
restricts it to them, as AMD's container guide does per GPU; HIP then numbers them from 0.
Hygon's DCU driver (hydcu) publishes the same topology. [unverified on hardware.]
"""

from __future__ import annotations

from pathlib import Path

TOPOLOGY = "sys/class/kfd/kfd/topology/nodes"


def node_properties(text: str) -> dict[str, int]:
    """``key value`` lines of a KFD node's ``properties`` file (non-integer lines skipped)."""
    props: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            props[parts[0]] = int(parts[1])
    return props


def render_minors(host_root: Path) -> list[int]:
    """The render minor (``renderD<minor>``) of each GPU, in HIP's device order."""
    root = host_root / TOPOLOGY
    try:
        nodes = sorted((p for p in root.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    except OSError:
        return []
    minors = []
    for node in nodes:
        try:
            props = node_properties((node / "properties").read_text(encoding="utf-8"))
        except OSError:
            continue
        if props.get("simd_count", 0) > 0 and props.get("drm_render_minor", 0) > 0:
            minors.append(props["drm_render_minor"])
    return minors
