"""Fitting: moons drawn in numpy are learnt to within 0.15 nats of their exact density."""

import numpy as np

import mflow
from conftest import moons, moons_log_density

# The fit target (issue 19): the held-out gap to the exact density.
TOLERANCE = 0.15


def test_moons_fit_close_to_exact_density():
    X = moons(4096, seed=0)
    held_out = moons(1000, seed=1)
    m = mflow.MarginalizingFlow(
        aux=2, hidden=64, blocks=6, epochs=64, batch=128, lr=2e-3, lr_schedule="cosine",
        split_fractions=(0.9, 0.05, 0.05), samples=20, eval_points=256, seed=0, verbose=False,
    )
    assert m.fit(X) is m
    model = m.score_samples(held_out, samples=100, seed=0)
    assert model.shape == (1000,) and model.dtype == np.float64
    exact = moons_log_density(held_out)
    gap = exact.mean() - model.mean()
    print(f"held-out log-likelihood: model {model.mean():.4f}, exact {exact.mean():.4f}, gap {gap:.4f}")
    assert gap < TOLERANCE, f"model {model.mean():.4f} vs exact {exact.mean():.4f}: gap {gap:.4f} ≥ {TOLERANCE}"
    # score is the mean of score_samples; the summary is the command line's.
    assert abs(m.score(held_out, samples=100, seed=0) - model.mean()) < 1e-12
    assert m.summary_["steps"] == 64 * (3686 // 128)
    assert m.n_features_in_ == 2 and m.image_shape_ is None
    s = m.sample(500, seed=3)
    assert s.shape == (500, 2) and s.dtype == np.float32
    # Samples are moons: their exact density is close to the data's own.
    assert moons_log_density(s.astype(np.float64)).mean() > exact.mean() - 0.5
