#!/usr/bin/env bash
# Second call: instant power (the NVML adapter's new reading) against the energy counter, and
# GPT-3 XL training with activation checkpointing (it ran out of memory without).
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-deps --no-index --target /tmp/pyextra .gpuwheels/*.whl 2>&1 | tail -2
export PYTHONPATH=/tmp/pyextra:$PWD PYTHONUNBUFFERED=1
python3 - <<'PY'
import pynvml, time
from bench.telemetry.nvml import NvmlAdapter
a = NvmlAdapter([0])
print("instant power supported:", a.instant, "|", a.scope["power_w"])
h = a.handles[0]
print("instant mW", a._instant_mw(h), "average mW", pynvml.nvmlDeviceGetPowerUsage(h))
PY
start=$(date +%s)
timeout 270 python3 -m bench run --suite .gpuwheels/probe.yaml --device cuda --only gemm-bf16,resnet-infer,bert-infer-fp16,pretrain-gpt3-xl --out "$OUT/run2" > "$OUT/bench2.log" 2>&1
echo "bench rc=$? after $(( $(date +%s) - start )) s"
(cd "$OUT" && tar czf run2.tgz run2 && rm -rf run2)
grep -v "^\s*$" "$OUT/bench2.log" | grep -v "setting up\|starting process\|warm-up" | tail -30
