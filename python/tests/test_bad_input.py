"""Bad input raises the stated exception, naming the problem."""

import os
import subprocess
import sys

import numpy as np
import pytest

import mflow
from conftest import QUICK, moons


@pytest.fixture(scope="module")
def fitted():
    return mflow.MarginalizingFlow(**QUICK).fit(moons(1024, seed=0))


def test_unfitted_model():
    m = mflow.MarginalizingFlow()
    for call in [lambda: m.score_samples(np.zeros((3, 2))), lambda: m.sample(3), lambda: m.save("x.safetensors")]:
        with pytest.raises(ValueError, match="not fitted"):
            call()
    with pytest.raises(mflow.NotFittedError):
        m.score(np.zeros((3, 2)))


@pytest.mark.parametrize(
    "X, message",
    [
        (np.array([[0.0, 1.0], [np.nan, 2.0], [3.0, 4.0]]), r"X: row 1, column 1 is NaN \(values must be finite\)"),
        (np.array([[0.0, 1.0], [1.0, np.inf]]), r"X: row 1, column 2 is inf"),
        (np.arange(6.0), r"1-D array of shape \(6,\)"),
        (np.zeros((0, 2)), r"X: no rows"),
        (np.array([["a", "b"], ["c", "d"]]), r"dtype <U1 is not numeric"),
        (np.array([[object(), 1]], dtype=object), r"is not numeric"),
        (np.zeros((5, 1)), r"1 column\(s\); mflow needs D ≥ 2"),
        (np.zeros((5, 4, 4), dtype=np.int16), r"images must be uint8 levels 0..255 or floats"),
        (np.zeros((5, 4, 4), dtype=np.float32), r"16 values per point, but the model was trained on D = 2"),
    ],
)
def test_bad_arrays(fitted, X, message):
    with pytest.raises(ValueError, match=message):
        fitted.score_samples(X)
    if X.ndim == 2 and X.shape[1] == 2 and X.dtype.kind == "f" and X.shape[0] > 0:
        with pytest.raises(ValueError, match=message):
            mflow.MarginalizingFlow(**QUICK).fit(np.concatenate([X, moons(200, seed=1)]))


def test_wrong_dimension_for_a_fitted_model(fitted):
    with pytest.raises(ValueError, match=r"X: 3 values per point, but the model was trained on D = 2"):
        fitted.score_samples(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"trained on real values"):
        fitted.score_samples(np.zeros((4, 1, 1, 2), dtype=np.uint8))


def test_bad_settings():
    X = moons(256, seed=0)
    for kw, message in [
        (dict(batch=0), "--batch"),
        (dict(batch=10_000), r"--batch 10000: larger than the training set"),
        (dict(select="worst"), r"select=\"worst\": expected one of best, last"),
        (dict(arch="resnet"), r"arch=\"resnet\""),
        (dict(arch="conv", blocks=None), r"conv models images"),
        (dict(scales=2), r"scales applies to arch=\"conv\" only"),
        (dict(split_fractions=(0.5, 0.1, 0.1)), r"--split-fractions"),
    ]:
        with pytest.raises(ValueError, match=message):
            mflow.MarginalizingFlow(**{**QUICK, **kw}).fit(X)
    with pytest.raises(ValueError, match="constant"):
        mflow.MarginalizingFlow(**QUICK).fit(np.c_[X, np.ones(len(X))])
    with pytest.raises(ValueError, match="not a setting"):
        mflow.MarginalizingFlow().set_params(widht=3)


def test_bad_model_file(tmp_path):
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a safetensors file"):
        mflow.load(tmp_path / "junk.safetensors")
    with pytest.raises(ValueError, match="missing.safetensors"):
        mflow.load(tmp_path / "missing.safetensors")


def test_device_errors_raise_runtime_error():
    # No adapter of that name: the engine cannot open a device.
    code = "import mflow\ntry:\n    mflow.adapter()\nexcept RuntimeError as e:\n    print('RuntimeError:', e)\n"
    env = dict(os.environ, MFLOW_ADAPTER="no-such-adapter-xyz")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("RuntimeError:") and "no-such-adapter-xyz" in r.stdout, r.stdout
