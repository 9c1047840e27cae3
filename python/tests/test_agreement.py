"""The package and the command line are one engine: the same checkpoint scores the same."""

import numpy as np

import mflow
from conftest import QUICK, cli, moons


def test_score_samples_equals_cli_per_point(tmp_path):
    # Trained by the command line on your own array (standardised: the model carries the
    # standardisation, and both sides must apply it the same way).
    np.save(tmp_path / "train.npy", moons(1024, seed=5))
    run = tmp_path / "run"
    cli("train", "--data", f"npy:{tmp_path / 'train.npy'}", "--aux", 2, "--hidden", 16, "--blocks", 2,
        "--epochs", 2, "--batch", 64, "--samples", 4, "--eval-points", 64, "--out", run, "--quiet")
    points = moons(300, seed=6)
    np.save(tmp_path / "points.npy", points)
    for s, seed in [(7, 0), (1, 11)]:
        per_point = tmp_path / f"per_point_{s}_{seed}.npy"
        cli("eval", "--model", run / "model.safetensors", "--data", f"npy:{tmp_path / 'points.npy'}",
            "--samples", s, "--seed", seed, "--per-point", per_point)
        want = np.load(per_point)
        got = mflow.load(run / "model.safetensors").score_samples(points, samples=s, seed=seed)
        assert got.shape == want.shape == (300,)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_score_samples_equals_cli_on_synthetic_moons(tmp_path):
    run = tmp_path / "run"
    cli("train", "--data", "moons", "--aux", 1, "--hidden", 16, "--blocks", 2, "--epochs", 1,
        "--train-size", 512, "--samples", 4, "--eval-points", 64, "--out", run, "--quiet")
    points = moons(200, seed=8).astype(np.float32)
    np.save(tmp_path / "points.npy", points)
    cli("eval", "--model", run / "model.safetensors", "--data", f"npy:{tmp_path / 'points.npy'}",
        "--samples", 10, "--seed", 0, "--per-point", tmp_path / "pp.npy")
    got = mflow.load(run / "model.safetensors").score_samples(points, samples=10, seed=0)
    np.testing.assert_allclose(got, np.load(tmp_path / "pp.npy"), rtol=0, atol=1e-5)
