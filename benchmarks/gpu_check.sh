#!/usr/bin/env bash
# On the GPU machine: unpack the carried data, put robustzoo and pyautoattack on the path, run the check.
# Prepared here by benchmarks/gpu_prepare.sh; results go to $OUT (the device tool's) or benchmarks/results/.
set -uo pipefail
cd "$(dirname "$0")/.."
[ -f .gpu/cifar10-jpeg.tar.gz ] || { echo "error: .gpu/ missing; run benchmarks/gpu_prepare.sh and carry .gpu" >&2; exit 2; }
out="${OUT:-benchmarks/results}"
mkdir -p /tmp/cifar10 "$out" && tar xzf .gpu/cifar10-jpeg.tar.gz -C /tmp/cifar10
export PYTHONPATH="$PWD:$PWD/.gpu/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv || true
"${PYTHON:-python3}" benchmarks/gpu_check.py --data /tmp/cifar10 --out "$out" "$@" 2>&1 | grep --line-buffered -v '^DEBUG ' | tee "$out/gpu_check.log"
exit "${PIPESTATUS[0]}"
