"""Shared helpers: MODEL.md's half-moons in numpy and their exact density, the CLI."""

import os
import pathlib
import subprocess

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def moons(n, seed, noise=0.1):
    """MODEL.md's half-moons: t ~ U[0, π], either arc with probability 1/2, plus N(0, σ²I)."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.0, np.pi, n)
    upper = rng.random(n) < 0.5
    x = np.where(upper, np.cos(t), 1.0 - np.cos(t))
    y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
    return np.stack([x, y], 1) + noise * rng.standard_normal((n, 2))


def moons_log_density(X, noise=0.1, K=2000):
    """The exact log-density: the mixture over both arcs and t, integrated by the midpoint
    rule on K points per arc (converged far below the tests' tolerances)."""
    t = (np.arange(K) + 0.5) / K * np.pi
    c, s = np.cos(t), np.sin(t)
    upper = -((X[:, :1] - c) ** 2 + (X[:, 1:] - s) ** 2) / (2 * noise**2)
    lower = -((X[:, :1] - 1 + c) ** 2 + (X[:, 1:] - 0.5 + s) ** 2) / (2 * noise**2)
    terms = np.concatenate([upper, lower], 1)
    m = terms.max(1, keepdims=True)
    return m[:, 0] + np.log(np.exp(terms - m).mean(1)) - np.log(2 * np.pi * noise**2)


def mflow_bin():
    """The command line the suite checks the package against (tools/test.sh builds it)."""
    path = os.environ.get("MFLOW_BIN") or str(ROOT / "target" / "release" / "mflow")
    if not os.path.exists(path):
        pytest.fail(f"{path}: no mflow binary (run `cargo build --release`, or set MFLOW_BIN)")
    return path


def cli(*args, check=True):
    r = subprocess.run([mflow_bin(), *map(str, args)], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"mflow {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stderr}")
    return r


# Small, quick settings for tests that do not measure the fit.
QUICK = dict(aux=2, hidden=16, blocks=2, epochs=2, batch=64, lr=1e-3, samples=4, eval_points=64, verbose=False)
