"""save and load: the command line's checkpoint files, in both directions."""

import numpy as np

import mflow
from conftest import QUICK, cli, moons


def test_round_trip_keeps_parameters_bit_identical(tmp_path):
    X = moons(1024, seed=2)
    m = mflow.MarginalizingFlow(**QUICK).fit(X)
    m.save(tmp_path / "m.safetensors")
    m2 = mflow.load(tmp_path / "m.safetensors")
    a, b = m.parameters_, m2.parameters_
    assert a.dtype == b.dtype == np.float32 and a.size > 0
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
    assert m2.n_features_in_ == 2 and m2.aux == 2
    # Saved again, the file is the same bytes.
    m2.save(tmp_path / "again.safetensors")
    assert (tmp_path / "m.safetensors").read_bytes() == (tmp_path / "again.safetensors").read_bytes()
    np.testing.assert_array_equal(m.score_samples(X[:50], seed=4), m2.score_samples(X[:50], seed=4))
    # A loaded model carries the settings it was trained under: refitted, it is the same model.
    m2.set_params(verbose=False).fit(X)
    assert np.array_equal(a.view(np.uint32), m2.parameters_.view(np.uint32))


def test_cli_evaluates_and_samples_a_model_saved_from_python(tmp_path):
    X = moons(1024, seed=3) * 3.0 + 5.0  # units far from standard: the standardisation must travel
    m = mflow.MarginalizingFlow(**QUICK).fit(X)
    m.save(tmp_path / "py.safetensors")
    points = moons(100, seed=4) * 3.0 + 5.0
    np.save(tmp_path / "points.npy", points)
    cli("eval", "--model", tmp_path / "py.safetensors", "--data", f"npy:{tmp_path / 'points.npy'}",
        "--samples", 5, "--seed", 2, "--per-point", tmp_path / "pp.npy")
    np.testing.assert_allclose(m.score_samples(points, samples=5, seed=2), np.load(tmp_path / "pp.npy"), atol=1e-5)
    # Sampling needs no data: the model carries its standardisation.
    cli("sample", "--model", tmp_path / "py.safetensors", "--n", 200, "--seed", 1, "--out", tmp_path / "s.npy")
    s = np.load(tmp_path / "s.npy")
    assert s.shape == (200, 2) and abs(s.mean() - X.mean()) < 1.5
    # Without --data, evaluation says why it cannot find the data.
    r = cli("eval", "--model", tmp_path / "py.safetensors", check=False)
    assert r.returncode != 0 and "pass --data" in r.stderr


def test_fit_with_out_writes_a_cli_run_folder(tmp_path):
    X = moons(1024, seed=2)
    m = mflow.MarginalizingFlow(**QUICK).fit(X, out=tmp_path / "run")
    for f in ["model.safetensors", "summary.json", "metrics.jsonl", "samples.png"]:
        assert (tmp_path / "run" / f).exists(), f
    # The folder holds a finished run now: a second fit there is refused, not overwritten.
    try:
        mflow.MarginalizingFlow(**QUICK).fit(X, out=tmp_path / "run")
    except ValueError as e:
        assert "holds a finished run" in str(e)
    else:
        raise AssertionError("a finished run was overwritten")
    mflow.MarginalizingFlow(**QUICK).fit(X, out=tmp_path / "run", force=True)
    assert m.summary_["model"].endswith("model.safetensors")
