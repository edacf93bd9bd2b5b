"""A spec sheet for the host CPU, estimated from what the host says about itself.

CPUs have no sheet in ``bench/specs/devices`` (the cpu vendor runs on whatever host it finds),
yet a figure means little without the device's peak beside it. So the cpu reference gets an
*estimate*, labelled as one wherever it is shown:

    peak FLOP/s = cores x FLOP per cycle per core x clock

- cores: the physical cores among the logical CPUs the benchmark may use (its affinity),
  and no more than its intra-op threads (a 1-thread run can use one core's units);
- FLOP per cycle per core: 2 (a fused multiply-add) x the vector lanes of the widest FMA
  instruction set in the CPU flags x 2 FMA units (most server cores have two; some parts
  have one, so the estimate may be twice too high there). AMD cores before Zen 5 (family
  0x19 and older) run AVX-512 on 256-bit halves. bf16, fp16 and int8 rates come from the
  flags that add them (AVX512_BF16, AVX512_FP16, VNNI, AMX); without such a flag fp16 is
  computed as fp32 (PyTorch converts) and int8 has no estimate;
- clock: the maximum the kernel reports (cpufreq ``cpuinfo_max_freq``), else psutil's, else
  the current ``cpu MHz`` (in a VM often the nominal clock, below the turbo clock).

Memory bandwidth cannot be read from the flags: it is null, and the roofline draws the compute
roof only. The pure arithmetic (``estimate_spec``) is separate from the reading of the host
(``host_facts``), so it is tested on hand-worked numbers.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from bench.documents import DeviceSpec

FMA_UNITS = 2
ESTIMATE_ID = "host-cpu-estimate"
SYS_CPU = Path("/sys/devices/system/cpu")


@dataclass(frozen=True)
class HostFacts:
    """What the estimate is made of (all read from the host, see ``host_facts``)."""

    model_name: str
    vendor_id: str
    family: int | None
    flags: frozenset[str]
    machine: str
    cores: int
    logical_cpus: int
    clock_hz: float | None
    clock_source: str
    memory_bytes: int | None
    sve_vector_bits: int | None = None
    threads: int | None = None
    notes: list[str] = field(default_factory=list)


def vector_bits(facts: HostFacts) -> tuple[int, str]:
    """Width of the FMA datapath in bits, and which flag it comes from."""
    f = facts.flags
    if facts.machine in ("aarch64", "arm64"):
        if "sve" in f and facts.sve_vector_bits:
            return facts.sve_vector_bits, f"SVE ({facts.sve_vector_bits}-bit vectors)"
        return 128, "NEON (asimd)"
    if "avx512f" in f:
        if facts.vendor_id == "AuthenticAMD" and (facts.family or 0) < 0x1A:
            return 256, "AVX-512 on 256-bit units (AMD before Zen 5)"
        return 512, "AVX-512F"
    if "fma" in f and "avx2" in f:
        return 256, "AVX2 + FMA"
    if "avx" in f:
        return 256, "AVX"
    return 128, "SSE2"


def flop_per_cycle(facts: HostFacts) -> dict[str, float | None]:
    """FLOP (int8: OP) per cycle per core, by precision."""
    bits, _ = vector_bits(facts)
    fp32 = 2.0 * (bits / 32) * FMA_UNITS
    f = facts.flags
    arm = facts.machine in ("aarch64", "arm64")
    if "amx_bf16" in f:
        bf16 = 1024.0
    elif "avx512_bf16" in f or (arm and "bf16" in f):
        bf16 = 2 * fp32
    else:
        bf16 = fp32
    if "amx_fp16" in f:
        fp16 = 1024.0
    elif "avx512_fp16" in f or (arm and "fphp" in f):
        fp16 = 2 * fp32
    else:
        fp16 = fp32
    if "amx_int8" in f:
        int8: float | None = 2048.0
    elif {"avx512_vnni", "avx_vnni"} & f or (arm and "i8mm" in f):
        int8 = 4 * fp32
    else:
        int8 = None
    return {"fp64": fp32 / 2, "fp32": fp32, "tf32": None, "fp16": fp16, "bf16": bf16,
            "int8": int8}


def estimate_spec(facts: HostFacts) -> DeviceSpec | None:
    """A device-spec document (schemas/device-spec.schema.json) for the host CPU, or None
    where the clock is unknown (then there is nothing to multiply)."""
    if not facts.clock_hz:
        return None
    cores = facts.cores if not facts.threads else max(1, min(facts.cores, facts.threads))
    per_cycle = flop_per_cycle(facts)
    peaks = {p: None if v is None else cores * v * facts.clock_hz for p, v in per_cycle.items()}
    bits, isa = vector_bits(facts)
    method = (f"{cores} core(s) x {per_cycle['fp32']:g} fp32 FLOP/cycle ({isa}: 2 x "
              f"{bits // 32} lanes x {FMA_UNITS} FMA units) x {facts.clock_hz / 1e9:.3g} GHz "
              f"({facts.clock_source})")
    return {
        "id": ESTIMATE_ID,
        "vendor": "cpu",
        "name": facts.model_name,
        "match": [re.escape(facts.model_name)],
        "form_factor": "host CPU",
        "devices_per_card": 1,
        "memory_bytes": facts.memory_bytes,
        "memory_bandwidth_bytes_per_s": None,
        "host_link": None,
        "host_link_bytes_per_s": None,
        "interconnect": None,
        "interconnect_bytes_per_s": None,
        "power_limit_w": None,
        "power_min_w": None,
        "peak_flops": peaks,
        "estimate": {
            "method": method,
            "cores": cores,
            "physical_cores": facts.cores,
            "logical_cpus": facts.logical_cpus,
            "threads": facts.threads,
            "clock_hz": facts.clock_hz,
            "clock_source": facts.clock_source,
            "vector_bits": bits,
            "isa": isa,
            "fma_units": FMA_UNITS,
            "flop_per_cycle_per_core": per_cycle,
            "notes": facts.notes,
        },
        "notes": "Estimated from the host's CPU flags, cores and clock, not a vendor figure: "
                 "it assumes 2 FMA units per core and the maximum clock the host reports. "
                 "Memory bandwidth and power limit cannot be read from the flags.",
        "sources": ["estimated by bench/specs/host_cpu.py from /proc/cpuinfo (flags, model) "
                    f"and the clock ({facts.clock_source})"],
    }


# -- reading the host (thin shell) -------------------------------------------------------------
def _cpuinfo() -> list[dict[str, str]]:
    blocks: list[dict[str, str]] = [{}]
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    for line in text.splitlines():
        if not line.strip():
            if blocks[-1]:
                blocks.append({})
            continue
        key, _, value = line.partition(":")
        blocks[-1].setdefault(key.strip(), value.strip())
    return [b for b in blocks if b]


def _physical_cores(cpus: list[int]) -> int:
    """Distinct (package, core) pairs among ``cpus``; their number if topology is hidden."""
    seen = set()
    for cpu in cpus:
        topo = SYS_CPU / f"cpu{cpu}" / "topology"
        try:
            seen.add(((topo / "physical_package_id").read_text().strip(),
                      (topo / "core_id").read_text().strip()))
        except OSError:
            return len(cpus)
    return len(seen) or len(cpus)


def _max_clock_hz(blocks: list[dict[str, str]]) -> tuple[float | None, str]:
    values = []
    for path in SYS_CPU.glob("cpu[0-9]*/cpufreq/cpuinfo_max_freq"):
        try:
            values.append(int(path.read_text().strip()) * 1e3)
        except (OSError, ValueError):
            continue
    if values:
        return max(values), "cpufreq cpuinfo_max_freq"
    try:
        import psutil

        freq = psutil.cpu_freq()
        if freq is not None and freq.max:
            return freq.max * 1e6, "psutil.cpu_freq().max"
    except (OSError, NotImplementedError, ImportError):
        pass
    mhz = [float(b["cpu MHz"]) for b in blocks if b.get("cpu MHz", "").replace(".", "").isdigit()]
    if mhz:
        return max(mhz) * 1e6, ("/proc/cpuinfo cpu MHz (the current clock; in a VM often the "
                                "nominal one, below turbo)")
    name = next((b.get("model name", "") for b in blocks), "")
    m = re.search(r"@\s*([0-9.]+)\s*GHz", name)
    if m:
        return float(m.group(1)) * 1e9, "the model name's nominal clock"
    return None, "no clock reported"


def host_facts(threads: int | None = None) -> HostFacts:
    """Facts of the CPUs this process may run on (its affinity)."""
    import platform

    import psutil

    blocks = _cpuinfo()
    first = blocks[0] if blocks else {}
    flags = frozenset((first.get("flags") or first.get("Features") or "").split())
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        list(range(os.cpu_count() or 1))
    clock, source = _max_clock_hz(blocks)
    family = first.get("cpu family")
    sve = None
    with contextlib.suppress(OSError, ValueError):
        sve = int(Path("/proc/sys/abi/sve_default_vector_length").read_text()) * 8
    name = first.get("model name") or first.get("Model name") or platform.processor() or \
        platform.machine()
    return HostFacts(
        model_name=name, vendor_id=first.get("vendor_id", ""),
        family=int(family) if family and family.isdigit() else None, flags=flags,
        machine=platform.machine(), cores=_physical_cores(cpus), logical_cpus=len(cpus),
        clock_hz=clock, clock_source=source, memory_bytes=psutil.virtual_memory().total,
        sve_vector_bits=sve, threads=threads)
