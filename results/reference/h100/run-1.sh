#!/usr/bin/env bash
# One device call: environment, the probe suite natively on the GPU, the harness overhead.
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version,power.limit,clocks.max.sm --format=csv
python3 -m pip install -q --no-deps --no-index --target /tmp/pyextra .gpuwheels/*.whl 2>&1 | tail -2
export PYTHONPATH=/tmp/pyextra:$PWD PYTHONUNBUFFERED=1
python3 -c "import sys, torch, transformers, peft, jsonschema, pynvml; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name(0), 'transformers', transformers.__version__, 'peft', peft.__version__)"
start=$(date +%s)
timeout 390 python3 -m bench run --suite .gpuwheels/probe.yaml --device cuda --out "$OUT/run" > "$OUT/bench.log" 2>&1
echo "bench rc=$? after $(( $(date +%s) - start )) s"
python3 -m bench validate "$OUT/run" 2>&1 | tail -4
s2=$(date +%s)
timeout 100 python3 -m bench.overhead --models resnet --rounds 3 --seconds 2 --markdown "$OUT/overhead.md" > "$OUT/overhead.log" 2>&1
echo "overhead rc=$? after $(( $(date +%s) - s2 )) s"
nvidia-smi --query-gpu=temperature.gpu,power.draw --format=csv
(cd "$OUT" && tar czf run.tgz run && rm -rf run)
grep -v "^\s*$" "$OUT/bench.log" | tail -60
tail -15 "$OUT/overhead.log"
