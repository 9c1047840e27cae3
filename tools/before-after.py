#!/usr/bin/env python3
"""Before/after on one machine in one run: alternates an old and a new mflow binary, round
after round (so drift hits both alike), on `mflow bench train --small` and on `mflow eval`
of one moons model (S = 100, 2000 test points), and prints the medians and their ratios.

    python3 tools/before-after.py OLD_MFLOW NEW_MFLOW [--rounds 5] [--steps 20]

Build the old binary from any commit with a worktree, e.g.
    git worktree add /tmp/old <commit> && (cd /tmp/old && cargo build --release)
Figures are samples/s (training) and flow evaluations/s (evaluation), parsed from the
binaries' own output; the new binary's training lines carry their path (fused or GEMMs).
"""
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

TRAIN = re.compile(r"^(\w+)\s+Q=(\d+)\s+H=(\d+)\s+batch (\d+)\s+(?:(fused|GEMMs)\*?\s+)?(\d+) samples/s(?:.*?(\d+) dispatches/step)?")
EVAL = re.compile(r"([\d.]+) flow evaluations/s")


def run(cmd):
    # The user's environment (HOME: the tuner's cache, so tuning is paid once, not per run).
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "NODEVICE_SELECT": "1"})
    if out.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed:\n{out.stderr}")
    return out.stdout + out.stderr


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    old, new = argv[0], argv[1]
    rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else 5
    steps = argv[argv.index("--steps") + 1] if "--steps" in argv else "20"
    tmp = Path(tempfile.mkdtemp(prefix="mflow-before-after-"))
    # One model both binaries read: trained briefly by the old one.
    run([old, "train", "--data", "moons", "--aux", "2", "--epochs", "1", "--train-size", "512", "--test-size",
         "2000", "--samples", "2", "--eval-points", "10", "--out", str(tmp / "m"), "--quiet"])
    model = str(tmp / "m" / "model.safetensors")
    figures = {}
    for r in range(rounds):
        for name, binary in (("old", old), ("new", new)):
            for line in run([binary, "bench", "train", "--small", "--steps", steps]).splitlines():
                m = TRAIN.match(line)
                if m:
                    label, q, h, batch, path, sps, disp = m.groups()
                    key = f"train {label} batch {batch} {name}" + (f" {path}" if path else "")
                    figures.setdefault(key, []).append((float(sps), int(disp or 0)))
            out = run([binary, "eval", "--model", model, "--samples", "100"])
            figures.setdefault(f"eval moons S=100 {name}", []).append((float(EVAL.search(out).group(1)), 0))
        print(f"round {r + 1}/{rounds} done", file=sys.stderr)
    print(f"{'figure':<40} {'median':>10}  dispatches  (of {rounds} rounds)")
    for key in sorted(figures):
        vals = [v for v, _ in figures[key]]
        disp = figures[key][0][1]
        print(f"{key:<40} {statistics.median(vals):>10.0f}  {disp or '':>10}  {' '.join(f'{v:.0f}' for v in vals)}")
    for key in sorted(figures):
        if " old" in key:
            base = statistics.median(v for v, _ in figures[key])
            stem = key.split(" old")[0]
            for k2 in sorted(figures):
                if k2.startswith(stem + " new"):
                    print(f"{k2:<40} {statistics.median(v for v, _ in figures[k2]) / base:>6.2f}x old")


if __name__ == "__main__":
    main(sys.argv[1:])
