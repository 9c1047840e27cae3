"""Images: uint8 (N, H, W) or (N, C, H, W) in, bits/dim and uint8 samples out, dense or conv."""

import numpy as np
import pytest

import mflow
from conftest import cli


def blobs(n, c=1, size=8, seed=0):
    """Bright squares at random places on a dark, noisy background: uint8 levels."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 40, (n, c, size, size)).astype(np.uint8)
    for k, (i, j) in enumerate(rng.integers(0, size - 3, (n, 2))):
        x[k, :, i:i + 3, j:j + 3] = 200 + rng.integers(0, 50)
    return x


SMALL = dict(aux=1, epochs=1, batch=16, samples=3, eval_points=16, verbose=False)


@pytest.mark.parametrize("arch", ["dense", "conv"])
def test_grey_images(arch, tmp_path):
    X = blobs(200)[:, 0]  # (N, H, W)
    kw = dict(hidden=32, blocks=2) if arch == "dense" else dict(hidden=8, head_hidden=16, head_blocks=1)
    m = mflow.MarginalizingFlow(arch=arch, **SMALL, **kw).fit(X, out=tmp_path / "run")
    assert m.image_shape_ == (1, 8, 8) and m.n_features_in_ == 64
    assert (tmp_path / "run" / "samples.png").exists()
    bpd = m.score_samples(X[:20], samples=3, bits_per_dim=True)
    logp = m.score_samples(X[:20], samples=3)
    assert bpd.shape == logp.shape == (20,) and np.all(np.isfinite(bpd))
    # bits/dim is log p(v) in 256 levels: −(log p − D log 256) / (D log 2).
    np.testing.assert_allclose(bpd, -(logp - 64 * np.log(256)) / (64 * np.log(2)), rtol=1e-9)
    # (N, H, W) and (N, 1, H, W) are the same images.
    np.testing.assert_array_equal(logp, m.score_samples(X[:20, None], samples=3))
    s = m.sample(5, seed=0)
    assert s.shape == (5, 8, 8) and s.dtype == np.uint8
    if arch == "conv":
        assert m.config_["flow"]["conv"] is not None
    # Saved and loaded, an image model is still one.
    m.save(tmp_path / "m.safetensors")
    m2 = mflow.load(tmp_path / "m.safetensors")
    assert m2.image_shape_ == (1, 8, 8)
    np.testing.assert_array_equal(m2.score_samples(X[:20], samples=3), logp)
    # The command line evaluates it on the same images saved as a uint8 npy: the same
    # per-point log p and bits/dim.
    np.save(tmp_path / "images.npy", X[:20])
    cli("eval", "--model", tmp_path / "m.safetensors", "--data", f"npy:{tmp_path / 'images.npy'}",
        "--samples", 3, "--seed", 0, "--per-point", tmp_path / "pp.npy")
    pp = np.load(tmp_path / "pp.npy")
    assert pp.shape == (20, 2)
    np.testing.assert_allclose(pp[:, 0], logp, rtol=0, atol=1e-5)
    np.testing.assert_allclose(pp[:, 1], bpd, rtol=0, atol=1e-6)


def test_colour_images_and_mismatches():
    X = blobs(120, c=3, seed=1)
    m = mflow.MarginalizingFlow(hidden=16, blocks=2, **SMALL).fit(X)
    assert m.image_shape_ == (3, 8, 8)
    assert m.sample(2, seed=1).shape == (2, 3, 8, 8)
    with pytest.raises(ValueError, match="trained on images of 8-bit levels"):
        m.score_samples(np.zeros((2, 192), dtype=np.float32))
    with pytest.raises(ValueError, match="bits_per_dim=True applies to image models"):
        mflow.MarginalizingFlow(hidden=8, blocks=2, **SMALL).fit(
            np.random.default_rng(0).normal(size=(200, 2))
        ).score_samples(np.zeros((2, 2)), bits_per_dim=True)


@pytest.mark.parametrize("arch", ["dense", "conv"])
def test_float_images_are_modelled_as_their_values(arch, tmp_path):
    """Float (N, C, H, W) arrays: their values, in nats (mflow train --preprocess none)."""
    rng = np.random.default_rng(2)
    X = blobs(160, seed=2).astype(np.float64) / 127.5 - 1.0 + rng.uniform(-0.01, 0.01, (160, 1, 8, 8))
    kw = dict(hidden=16, blocks=2) if arch == "dense" else dict(hidden=8, head_hidden=16, head_blocks=1)
    m = mflow.MarginalizingFlow(arch=arch, **SMALL, **kw).fit(X, out=tmp_path / "run")
    assert m.image_shape_ == (1, 8, 8) and m.config_["run"]["preprocess"] == "none"
    assert (tmp_path / "run" / "samples.png").exists()
    logp = m.score_samples(X[:20], samples=3)
    assert logp.shape == (20,) and np.all(np.isfinite(logp))
    with pytest.raises(ValueError, match="bits_per_dim=True applies to image models"):
        m.score_samples(X[:20], bits_per_dim=True)
    s = m.sample(4, seed=0)
    assert s.shape == (4, 8, 8) and s.dtype == np.float32
    # The command line evaluates the same float images, saved as a float32 npy, alike.
    m.save(tmp_path / "m.safetensors")
    np.save(tmp_path / "floats.npy", X[:20].astype(np.float32))
    cli("eval", "--model", tmp_path / "m.safetensors", "--data", f"npy:{tmp_path / 'floats.npy'}",
        "--samples", 3, "--seed", 0, "--per-point", tmp_path / "pp.npy")
    np.testing.assert_allclose(np.load(tmp_path / "pp.npy").reshape(-1), logp, rtol=0, atol=1e-5)
    # 8-bit images are not float images.
    with pytest.raises(ValueError, match="trained on float images"):
        m.score_samples(blobs(2))
