#!/usr/bin/env bash
# The evaluation issue's MNIST figures on a CPU adapter: B = 0 and B = 4 MFs in dequant mode,
# trained as long as this machine affords, with test bits/dim, the S-curve and sample grids.
# usage: tools/mnist-figures.sh OUT [MNIST_DIR] [EPOCHS] [HIDDEN]
set -euo pipefail
out=${1:?usage: tools/mnist-figures.sh OUT [MNIST_DIR] [EPOCHS] [HIDDEN]}
dir=${2:-../shared/data/mnist}
epochs=${3:-1}
hidden=${4:-256}
bin=${MFLOW:-target/release/mflow}
export NODEVICE_SELECT=1
for b in 0 4; do
    s=$([ "$b" = 0 ] && echo 1 || echo 10)
    [ -f "$out/mnist_b$b/summary.json" ] || /usr/bin/time -f "mnist B=$b: %e s wall" "$bin" train --data "mnist:$dir" \
        --preprocess dequant --aux "$b" --hidden "$hidden" --epochs "$epochs" --samples "$s" \
        --eval-points 10000 --out "$out/mnist_b$b" --quiet
done
"$bin" eval --model "$out/mnist_b4/model.safetensors" --split test --samples 1,10,100 --limit 1000
"$bin" eval --model "$out/mnist_b4/model.safetensors" --split test --samples 1,10,100 --limit 1000 --json > "$out/mnist_b4/s_curve.jsonl"
