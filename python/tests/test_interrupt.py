"""Ctrl-C during fit: stops after the current step, keeps its checkpoint, raises
KeyboardInterrupt. So does a callback returning False."""

import _thread
import json
import signal
import threading

import pytest

import mflow
from conftest import QUICK, cli, moons


def steps_logged(folder):
    lines = [json.loads(l) for l in (folder / "metrics.jsonl").read_text().splitlines()]
    return lines


@pytest.fixture
def sigint_raises():
    """Python's own SIGINT handler, as at a terminal (a shell starts background jobs with
    SIGINT ignored, and Python then installs none)."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def test_ctrl_c_stops_with_a_checkpoint(tmp_path, sigint_raises):
    X = moons(1024, seed=0)
    out = tmp_path / "run"
    fired = []

    def on_first_step(step, loss):
        if not fired:
            fired.append(step)
            # SIGINT as a terminal sends it: Python's handler runs at the next check.
            threading.Timer(0.05, _thread.interrupt_main).start()

    m = mflow.MarginalizingFlow(**{**QUICK, "epochs": 200, "log_every": 1}, callback=on_first_step)
    with pytest.raises(KeyboardInterrupt):
        m.fit(X, out=out)
    assert (out / "model.safetensors").exists()
    assert not (out / "summary.json").exists()
    # The checkpoint is a good one the command line can evaluate, at a step before the end.
    info = mflow.load(out / "model.safetensors").config_
    assert 0 < info["step"] < 200 * (819 // 64)
    cli("eval", "--model", out / "model.safetensors", "--data", "moons", "--samples", 2, "--limit", 50)


def test_callback_returning_false_stops(tmp_path):
    seen = []

    def stop_at_ten(step, loss):
        seen.append(step)
        return step < 10

    m = mflow.MarginalizingFlow(**{**QUICK, "epochs": 50, "log_every": 1}, callback=stop_at_ten)
    with pytest.raises(KeyboardInterrupt):
        m.fit(moons(1024, seed=0), out=tmp_path / "run")
    # Every step's loss, in order, up to the one that said stop; the run stopped after the
    # step in progress then (its readback lags by at most a few steps).
    assert seen == list(range(1, 11))
    stopped = mflow.load(tmp_path / "run" / "model.safetensors").config_["step"]
    assert 10 <= stopped <= 13, stopped


def test_callback_exception_propagates():
    def boom(step, loss):
        raise ZeroDivisionError("from the callback")

    with pytest.raises(ZeroDivisionError, match="from the callback"):
        mflow.MarginalizingFlow(**QUICK, ).fit(moons(512, seed=0), callback=boom)
