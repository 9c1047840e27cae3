"""Benchmark (not a test): the Python package's fit against `mflow train` on the default
moons job, alternating, same machine, same run of this script. Both sides report the
training loop's own samples/s (summary.json's train_samples_per_s: validation and
checkpoints excluded), so the ratio is what the bindings cost per step: the step hook,
the GIL taken back for it, the progress bar.

    target/pyenv/bin/python tools/bench_python.py [ROUNDS] [EPOCHS]

Needs the package installed (`pip install ./python`) and `cargo build --release`.
"""

import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

import numpy as np

import mflow

ROOT = pathlib.Path(__file__).resolve().parents[1]


def moons(n, seed, noise=0.1):
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, np.pi, n)
    upper = rng.random(n) < 0.5
    x = np.where(upper, np.cos(t), 1 - np.cos(t))
    y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
    return np.stack([x, y], 1) + noise * rng.standard_normal((n, 2))


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    binary = os.environ.get("MFLOW_BIN", str(ROOT / "target" / "release" / "mflow"))
    # The default job (`mflow train`): B = 2, 6 blocks of width 64, batch 256, lr 2e-3, the
    # parameters averaged (0.999), S = 100 on 2,000 points. 2,560 rows split 0.8/0.1/0.1 give its 2,048 training rows.
    X = moons(2560, seed=0)
    cli_rates, py_rates = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            out = pathlib.Path(tmp) / "cli"
            subprocess.run([binary, "train", "--epochs", str(epochs), "--out", str(out), "--force", "--quiet"],
                           check=True, capture_output=True)
            cli_rates.append(json.loads((out / "summary.json").read_text())["train_samples_per_s"])
            m = mflow.MarginalizingFlow(aux=2, hidden=64, blocks=6, epochs=epochs, batch=256, lr=2e-3,
                                        ema=0.999, samples=100, eval_points=2000, seed=0)
            m.fit(X)
            py_rates.append(m.summary_["train_samples_per_s"])
            print(f"round {r + 1}: mflow train {cli_rates[-1]:.0f} samples/s, fit {py_rates[-1]:.0f} samples/s",
                  flush=True)
    c, p = statistics.median(cli_rates), statistics.median(py_rates)
    print(f"median of {rounds}: mflow train {c:.0f} samples/s, Python fit {p:.0f} samples/s, "
          f"fit/train = {p / c:.3f} ({epochs} epochs, adapter {mflow.adapter()})")


if __name__ == "__main__":
    main()
