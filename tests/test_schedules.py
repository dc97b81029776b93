"""Learning-rate schedules (minivae/schedules.py) and the callback that sets them."""

import math
from collections import Counter
from itertools import pairwise

import numpy as np
import pytest

from minivae.errors import InputError
from minivae.models import VAE
from minivae.optim import Adam
from minivae.schedules import (
    BURDA_EPOCHS,
    LearningRate,
    burda2015,
    burda_stage,
    cosine,
    schedule,
    step,
)
from minivae.train import Progress, fit


def test_burda2015_has_8_stages_of_3_to_the_i_epochs_3280_in_all():
    assert BURDA_EPOCHS == 3280
    stages = Counter(burda_stage(e) for e in range(BURDA_EPOCHS))
    assert stages == {i: 3 ** i for i in range(8)}
    assert [burda_stage(e) for e in (0, 1, 3, 4, 12, 13)] == [0, 1, 1, 2, 2, 3]
    assert burda_stage(10 ** 6) == 7                                  # the last rate stays


def test_burda2015_divides_the_rate_by_10_over_the_7_steps():
    f = burda2015(1e-3)
    assert f(0) == 1e-3
    assert f(1) == pytest.approx(1e-3 * 10 ** (-1 / 7), rel=1e-15)
    assert f(BURDA_EPOCHS - 1) == pytest.approx(1e-4, rel=1e-12)
    rates = [f(e) for e in range(BURDA_EPOCHS)]
    assert all(a >= b for a, b in pairwise(rates))             # never rises
    assert len(set(rates)) == 8


def test_step_and_cosine():
    f = step(0.1, every=10, gamma=0.5)
    assert [f(e) for e in (0, 9, 10, 25)] == [0.1, 0.1, 0.05, 0.025]
    g = cosine(1.0, 10, lr_min=0.1)
    assert g(0) == 1.0 and g(10) == pytest.approx(0.1) and g(20) == pytest.approx(0.1)
    assert g(5) == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi / 2)) / 2)


def test_schedule_by_name():
    assert schedule("constant", 0.01, 5)(4) == 0.01
    assert schedule("step", 1.0, 9)(3) == pytest.approx(0.1)          # every epochs // 3
    assert schedule("burda2015", 1e-3, 3280)(5) == burda2015(1e-3)(5)
    with pytest.raises(InputError, match="constant, step, cosine, burda2015"):
        schedule("linear", 0.01, 5)


@pytest.mark.parametrize("call, message", [
    (lambda: burda2015(0.0), "positive learning rate"),
    (lambda: burda2015(float("nan")), "positive learning rate"),
    (lambda: step(0.1, every=0), "every >= 1"),
    (lambda: step(0.1, every=3, gamma=1.5), "gamma"),
    (lambda: cosine(0.1, 10, lr_min=0.2), "lr_min"),
    (lambda: LearningRate(None, 0.1), "a function of the epoch")])
def test_bad_settings_are_refused(call, message):
    with pytest.raises(InputError, match=message):
        call()


def run(epochs, stop_after=None):
    """A small VAE fitted under a step schedule; stop_after: stop there and resume."""
    x = np.random.default_rng(0).random((64, 8)).astype(np.float32)
    model = VAE(8, hidden=(6,), z_dim=2, rng=1)
    opt, rng = Adam(model.params, lr=1e-2), np.random.default_rng(2)

    def callbacks():                         # a resumed run makes its callbacks anew
        return [LearningRate(opt, step(1e-2, every=2, gamma=0.5))]

    class Stop:
        def epoch_end(self, p):
            p.stop = p.epoch == stop_after

    history = fit(model, x, opt, epochs, 16, rng, callbacks() + [Stop()])
    if stop_after is not None:
        p = Progress(epochs=epochs, batches=4, epoch=stop_after, history=history)
        history = fit(model, x, opt, epochs, 16, rng, callbacks(), progress=p)
    return history, model.params


def test_the_callback_sets_each_epochs_rate_and_a_resumed_fit_gets_the_same():
    history, params = run(5)
    assert [row["lr"] for row in history] == [1e-2, 1e-2, 5e-3, 5e-3, 2.5e-3]
    again, resumed = run(5, stop_after=3)
    assert [row["lr"] for row in again] == [row["lr"] for row in history]
    for k in params:
        np.testing.assert_array_equal(params[k], resumed[k])           # bit for bit
