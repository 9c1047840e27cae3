"""Two models fitted in two Python threads at once: both finish, each as if alone."""

import threading

import numpy as np

import mflow
from conftest import QUICK, moons


def test_two_threads_match_models_fitted_alone():
    data = [moons(1024, seed=10), moons(1024, seed=11)]
    settings = [dict(QUICK, seed=1), dict(QUICK, seed=2, aux=1)]
    alone = [mflow.MarginalizingFlow(**s).fit(x).parameters_ for s, x in zip(settings, data)]
    together = [None, None]
    errors = []
    ticks = [0, 0]

    def work(i):
        try:
            def count(step, loss):
                ticks[i] += 1
            m = mflow.MarginalizingFlow(**settings[i], callback=count)
            together[i] = m.fit(data[i]).parameters_
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in threads), "a fit did not finish"
    assert not errors, errors
    for a, b in zip(alone, together):
        np.testing.assert_array_equal(a, b)
    assert all(t > 0 for t in ticks)


def test_gil_is_released_during_fit():
    # While one thread fits, another runs Python code.
    done = threading.Event()
    counter = [0]

    def spin():
        while not done.is_set():
            counter[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        mflow.MarginalizingFlow(**QUICK).fit(moons(1024, seed=0))
    finally:
        done.set()
        t.join()
    assert counter[0] > 1000
