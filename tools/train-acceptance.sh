#!/usr/bin/env bash
# The training issue's acceptance grid: gauss D=2 (ψ=1 B=0; ψ=3 B=0; ψ=3 B=2) for seeds 0-2,
# and moons B=0 / B=2, each a full `mflow train` with evaluation at S=200.
# usage: tools/train-acceptance.sh OUT [GAUSS_EPOCHS] [MOONS_EPOCHS]   (defaults: 1024 1024)
set -euo pipefail
out=${1:?usage: tools/train-acceptance.sh OUT [GAUSS_EPOCHS] [MOONS_EPOCHS]}
ge=${2:-1024}
me=${3:-1024}
bin=${MFLOW:-target/release/mflow}
export NODEVICE_SELECT=1
for cfg in "1 0" "3 0" "3 2"; do
    set -- $cfg
    for seed in 0 1 2; do
        dir="$out/gauss_d2_psi$1_b$2_s$seed"
        [ -f "$dir/summary.json" ] || "$bin" train --data gauss --dim 2 --psi "$1" --aux "$2" --seed "$seed" --epochs "$ge" --out "$dir" --quiet
    done
done
for b in 0 2; do
    dir="$out/moons_b${b}_s0"
    [ -f "$dir/summary.json" ] || "$bin" train --data moons --aux "$b" --seed 0 --epochs "$me" --out "$dir" --quiet
done
python3 - "$out" <<'PY'
import json, glob, os, sys, statistics as st
rows = {}
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*", "summary.json"))):
    s = json.load(open(f))
    key = os.path.basename(os.path.dirname(f)).rsplit("_s", 1)[0]
    rows.setdefault(key, []).append(s)
for key, ss in rows.items():
    h = [s["heldout_ll"] for s in ss]
    t = [s["true_ll"] for s in ss if s["true_ll"] is not None]
    sps = [s["train_samples_per_s"] for s in ss]
    print(f"{key:<22} seeds {len(ss)}  heldout {st.mean(h):8.4f} (per seed {', '.join(f'{v:.4f}' for v in h)})"
          f"  truth {st.mean(t):8.4f}  epochs {ss[0]['config']['epochs']}  S {ss[0]['samples']}  {st.mean(sps):.0f} samples/s")
PY
