#!/usr/bin/env bash
# One GPU benchmark run: builds, runs the test suite, then every benchmark (`mflow bench
# all`: GEMMs, training (dense, and the conv flow at MNIST's shape), evaluation, tuning, sweeps) and writes one JSON file with the
# adapter, its driver and limits and every figure. When PyTorch is importable it adds the
# same model's eager training step (tools/torch_step.py, CUDA when present) and the ratio.
#
#   bash tools/bench-all.sh [OUT.json]        # default: bench-all.json
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench-all.json}
export NODEVICE_SELECT=1
cargo build --release --quiet
mflow="${CARGO_TARGET_DIR:-target}/release/mflow"
bash tools/test.sh
"$mflow" bench all --json "$out"
if python3 -c 'import torch' 2>/dev/null; then
    torch_lines=$(python3 tools/torch_step.py)
    echo "$torch_lines"
    TORCH="$torch_lines" python3 - "$out" <<'PY'
import json, os, sys
path = sys.argv[1]
report = json.load(open(path))
torch = [json.loads(l) for l in os.environ["TORCH"].splitlines() if l.strip()]
report["figures"] += torch
# mflow's samples/s over PyTorch's for the same label and batch.
for t in torch:
    for f in report["figures"]:
        if f.get("bench") == "train" and f.get("label") == t["label"] and f.get("batch") == t["batch"]:
            f["ratio_to_torch_" + t["device"]] = f["samples_per_s"] / t["samples_per_s"]
json.dump(report, open(path + ".tmp", "w"), indent=2)
os.replace(path + ".tmp", path)
PY
else
    echo "bench-all: PyTorch is not installed; no eager-step ratio"
fi
echo "bench-all: wrote $out"
