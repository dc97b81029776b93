"""minivae.train.fit, the training loop on arrays: it trains every model, calls its callbacks in
order, stops when asked and goes on bit-identically; KLWarmup's schedule; bad arguments."""

import numpy as np
import pytest

from minivae.errors import InputError
from minivae.models import PCA, VAE, Autoencoder, DenoisingAutoencoder, LinearAutoencoder
from minivae.optim import SGD, Adam
from minivae.train import KLWarmup, Progress, fit

D, Z, N = 16, 2, 200


def _x(n=N, seed=0):
    return np.random.default_rng(seed).random((n, D), dtype=np.float32)       # (N, D) in [0, 1)


MODELS = {
    "vae": lambda: VAE(D, (8,), Z, rng=0),
    "ae": lambda: Autoencoder(D, (8,), Z, rng=0),
    "dae": lambda: DenoisingAutoencoder(D, (8,), Z, noise="masking", rng=0),
    "linear-ae": lambda: LinearAutoencoder(D, Z, rng=0),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_fit_trains_every_model_and_lowers_the_loss(name):
    model, x = MODELS[name](), _x()
    history = fit(model, x, Adam(model.params, lr=1e-2), 5, 32, rng=1)
    assert [row["epoch"] for row in history] == [1, 2, 3, 4, 5]
    assert all(np.isfinite(row["train_loss"]) for row in history)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    if name == "vae":
        assert {"train_recon", "train_kl"} <= set(history[-1])
        row = history[-1]
        assert row["train_loss"] == pytest.approx(row["train_recon"] + row["train_kl"], rel=1e-5)


def test_the_epoch_means_are_the_means_of_the_batch_losses():
    """7 batches of 32, 32, ..., 8 rows: train_loss is the mean over examples, not batches."""
    model, x, losses = VAE(D, (8,), Z, rng=0), _x(), []

    class Record:
        def batch_end(self, p):
            losses.append((p.loss, min(p.batch * 32, N) - (p.batch - 1) * 32))
    history = fit(model, x, SGD(model.params, lr=1e-3), 1, 32, rng=1, callbacks=[Record()])
    assert len(losses) == 7 and losses[-1][1] == 8
    mean = sum(loss * b for loss, b in losses) / N
    assert history[0]["train_loss"] == pytest.approx(mean, rel=1e-12)


def test_callbacks_are_called_in_order_with_the_progress():
    model, x, calls = VAE(D, (8,), Z, rng=0), _x(64), []

    class Spy:
        def __init__(self, name):
            self.name = name

        def __getattr__(self, event):
            if event not in ("epoch_begin", "batch_begin", "batch_end", "epoch_end"):
                raise AttributeError(event)
            return lambda p: calls.append((self.name, event, p.epoch, p.batch, id(p)))

    class OnlyEpochs:                                  # a callback may have some methods only
        def epoch_end(self, p):
            calls.append(("epochs", "epoch_end", p.epoch, p.batch, id(p)))
    p = Progress(2, 2)
    fit(model, x, Adam(model.params), 2, 32, rng=0, callbacks=[Spy("a"), Spy("b"), OnlyEpochs()],
        progress=p)
    assert {c[4] for c in calls} == {id(p)}            # the same Progress, every time
    want = []
    for e in range(2):
        want += [("a", "epoch_begin", e, 0), ("b", "epoch_begin", e, 0)]
        for b in range(2):
            want += [("a", "batch_begin", e, b), ("b", "batch_begin", e, b),
                     ("a", "batch_end", e, b + 1), ("b", "batch_end", e, b + 1)]
        want += [(n, "epoch_end", e + 1, 0) for n in ("a", "b", "epochs")]
    assert [c[:4] for c in calls] == want
    assert [row["epoch"] for row in p.history] == [1, 2] and p.epoch == 2


class StopAt:
    """Sets p.stop after batch ``batch`` of epoch ``epoch`` (0-based); records the data
    Generator's state at the start of each epoch, as the trainer's checkpoints do."""

    def __init__(self, rng, epoch, batch):
        self.rng, self.at, self.start = rng, (epoch, batch), None

    def epoch_begin(self, p):
        self.start = self.rng.bit_generator.state

    def batch_end(self, p):
        if (p.epoch, p.batch) == self.at:
            p.stop = True


def _params(model):
    return {k: v.copy() for k, v in model.params.items()}


@pytest.mark.parametrize("binarize", [False, True])
@pytest.mark.parametrize("epoch, batch", [(1, 3), (0, 1), (1, 7)])
def test_stop_then_continue_is_bit_identical(binarize, epoch, batch):
    """p.stop ends fit after the batch; fit from that Progress, with the data Generator put
    back where the epoch began, ends exactly where a fit that never stopped ends."""
    x = _x()

    def fresh():
        model = VAE(D, (8,), Z, rng=0)
        return model, Adam(model.params, lr=1e-2), np.random.default_rng(5)

    model, opt, rng = fresh()
    straight = fit(model, x, opt, 3, 32, rng, binarize=binarize)
    want, want_rng = _params(model), model.rng.bit_generator.state

    model, opt, rng = fresh()
    stop, p = StopAt(rng, epoch, batch), Progress(3, 7)
    fit(model, x, opt, 3, 32, rng, [stop], binarize=binarize, progress=p)
    assert p.stop and (p.epoch, p.batch) == ((epoch + 1, 0) if batch == 7 else (epoch, batch))
    assert len(p.history) == p.epoch                      # whole epochs only
    if p.batch:                                           # mid-epoch: replay the epoch's draws
        rng.bit_generator.state = stop.start
    history = fit(model, x, opt, 3, 32, rng, binarize=binarize, progress=p)
    assert not p.stop and p.epoch == 3 and p.batch == 0
    assert history == straight                            # the same means, bit for bit
    for k, v in _params(model).items():
        assert v.tobytes() == want[k].tobytes(), k
    assert model.rng.bit_generator.state == want_rng


def test_kl_warmup_schedule():
    """kl_weight = min(1, (batches done + 1) / (epochs * batches per epoch)), set before each
    batch: over 2 epochs of 4 batches, 1/8, 2/8, ..., 8/8, then 1."""
    model, x, seen = VAE(D, (8,), Z, rng=0), _x(128), []

    class Watch:
        def batch_begin(self, p):
            seen.append(model.kl_weight)
    fit(model, x, Adam(model.params), 3, 32, rng=0, callbacks=[KLWarmup(model, 2), Watch()])
    assert seen == [k / 8 for k in range(1, 9)] + [1.0] * 4
    with pytest.raises(InputError, match="KLWarmup: expected an integer epochs >= 1"):
        KLWarmup(model, 0)


def test_kl_warmup_goes_on_where_a_stopped_fit_left_it():
    model, x, seen = VAE(D, (8,), Z, rng=0), _x(128), []

    class Watch:
        def batch_begin(self, p):
            seen.append(model.kl_weight)
    p = Progress(2, 4, epoch=1, batch=2)
    fit(model, x, Adam(model.params), 2, 32, rng=0, callbacks=[KLWarmup(model, 4), Watch()],
        progress=p)
    assert seen == [7 / 16, 8 / 16]


def test_zero_epochs_changes_nothing():
    model, x = VAE(D, (8,), Z, rng=0), _x()
    before = _params(model)
    assert fit(model, x, Adam(model.params), 0, 32, rng=0) == []
    assert all(np.array_equal(before[k], v) for k, v in model.params.items())


@pytest.mark.parametrize("call, words", [
    (lambda m, x, o: fit(m, x.tolist(), o, 1), "fit: expected x to be a numpy array"),
    (lambda m, x, o: fit(m, x[0], o, 1), "fit: expected x with 2 dimensions"),
    (lambda m, x, o: fit(m, x[:0], o, 1), "expected at least one example"),
    (lambda m, x, o: fit(m, x * np.nan, o, 1), "fit: x contains NaN"),
    (lambda m, x, o: fit(m, x, o, -1), "fit: expected an integer epochs >= 0"),
    (lambda m, x, o: fit(m, x, o, 2.5), "fit: expected an integer epochs >= 0"),
    (lambda m, x, o: fit(m, x, o, 1, batch_size=0), "fit: expected an integer batch_size >= 1"),
    (lambda m, x, o: fit(m, x, o, 1, batch_size="32"), "integer batch_size"),
    (lambda m, x, o: fit(m, x, None, 1), "fit: expected an optimizer with step(grads)"),
    (lambda m, x, o: fit(object(), x, o, 1), "fit: expected a model with loss, backward"),
    (lambda m, x, o: fit(m, x, o, 1, rng="seed"), "fit: expected rng"),
    (lambda m, x, o: fit(m, x, o, 1, 32, progress=Progress(1, 3)), "Progress of 7 batches"),
    (lambda m, x, o: fit(m, x, o, 1, 32, progress=Progress(1, 7, batch=7)), "Progress of 7"),
    (lambda m, x, o: fit(m, x, o, 1, 32, progress={"epoch": 0}), "progress must be a Progress"),
    (lambda m, x, o: fit(m, x, o, 1, callbacks=[print]), "fit: expected callbacks"),
])
def test_bad_arguments_are_refused_by_name(call, words):
    model, x = VAE(D, (8,), Z, rng=0), _x()
    with pytest.raises(InputError) as info:
        call(model, x, Adam(model.params))
    assert words in str(info.value), str(info.value)


def test_a_model_fitted_in_closed_form_is_refused():
    with pytest.raises(InputError, match="fit: .*PCA.*closed form"):
        fit(PCA(2), _x(), Adam({"w": np.zeros(1, np.float32)}), 1)
