#!/usr/bin/env bash
# The 16-core part of the MinAtar scaling study (docs/REPRODUCTION.md), as run on a lent 16-core
# machine with Python 3.12 and its own torch, the harness's other dependencies carried as wheels in
# .whl/ (no network there). From the repository root; results go to $OUT (default: ./sixteen-cores).
#   1. the machine: lscpu, versions;
#   2. harness sweep suites/minatar16.yaml (real Hogwild, threads 1-16), stopped cleanly after
#      SWEEP_SECONDS (a sweep resumes where it stopped).
set -u
OUT=${OUT:-sixteen-cores}; mkdir -p "$OUT"
SWEEP_SECONDS=${SWEEP_SECONDS:-500}
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site:$PWD
fi
{ lscpu; nproc; free -g; python3 -c "import sys, torch, numpy, gymnasium; print(sys.version, torch.__version__, numpy.__version__, gymnasium.__version__)"; } > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt" | grep -E "Model name|^CPU\(s\)|Thread|Core|Socket|NUMA node|^[0-9]|torch" 
python3 -m harness.cli sweep suites/minatar16.yaml --dry-run --cores 16 || exit 4
SECONDS=0
timeout -s INT -k 30 "$SWEEP_SECONDS" python3 -m harness.cli sweep suites/minatar16.yaml --cores 16 > "$OUT/sweep.log" 2>&1
echo "sweep: rc $? in ${SECONDS}s"; tail -5 "$OUT/sweep.log"
tar czf "$OUT/minatar16.tgz" results/minatar16 && ls -la "$OUT"
