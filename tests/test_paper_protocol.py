"""The IWAE paper's training protocol in runs: the IWAE objective, tanh and Glorot's
initialisation, Adam's beta2 and epsilon, learning-rate schedules, a validation split with the
best checkpoint kept and early stopping; each survives resume bit for bit."""

import json
import subprocess
import sys

import numpy as np
import pytest

from minivae.data import Dataset
from minivae.errors import InputError
from minivae.run import checkpoint as ckpt
from minivae.run import folder as rf
from minivae.run import trainer as T
from minivae.run.config import TrainConfig
from minivae.schedules import burda2015
from minivae.train import Progress
from tests.small_data import every
from tests.test_train import _same

_small_sprites = every(16)         # sprites runs below take seconds, also without the JIT

IWAE = {"model": "iwae", "x_dim": 16, "hidden": [8], "z_dim": 2, "k": 3, "activation": "tanh",
        "init": "glorot"}


@pytest.fixture(scope="module")
def toy3():
    """(train, valid, test) Datasets of 16-pixel images: 200, 40 and 40 examples."""
    x = np.random.default_rng(0).random((280, 16), dtype=np.float32)
    return tuple(Dataset(x[a:b].copy(), None, (4, 4), "toy", split)
                 for (a, b), split in zip([(0, 200), (200, 240), (240, 280)],
                                          ["train", "valid", "test"], strict=True))


def _run(tmp_path, name, **cfg):
    cfg = {"epochs": 4, "batch_size": 32, "schedule": "burda2015", "adam_beta2": 0.99,
           "adam_eps": 1e-4, "validation": "on", **cfg}
    return rf.create_run(tmp_path / name, IWAE, "toy", TrainConfig(**cfg)).dir


def test_an_iwae_run_with_the_papers_protocol_resumes_bit_identical(tmp_path, toy3):
    straight = _run(tmp_path, "straight")
    history = T.train(straight, datasets=toy3, verbose=False)
    assert [row["lr"] for row in history] == [burda2015(1e-3)(e) for e in range(4)]
    assert all("valid_loss" in row and "test_loss" in row for row in history)
    resumed = _run(tmp_path, "resumed", epochs=2)
    T.train(resumed, datasets=toy3, verbose=False)
    T.train(resumed, datasets=toy3, verbose=False, epochs=4)
    _same(straight, resumed)


def test_best_npz_holds_the_epoch_of_the_lowest_validation_loss(tmp_path, toy3):
    d = _run(tmp_path, "run", epochs=5, lr=0.05, schedule="constant")   # a large step: noisy
    history = T.train(d, datasets=toy3, verbose=False)
    losses = [row["valid_loss"] for row in history]
    _, _, meta = ckpt.load(d / rf.BEST)
    assert meta["progress"]["epoch"] == int(np.argmin(losses)) + 1
    model, _ = rf.load_model(d, best=True)
    again = T.mean_terms(model, toy3[1].x, "valid_")["valid_loss"]   # another z: close, not equal
    assert abs(again - min(losses)) < 0.05 * abs(min(losses))


def _stopper(losses, patience):
    stop = T.EarlyStopping(patience, lambda msg: None)
    p = Progress(epochs=10, batches=1, history=[{"valid_loss": v} for v in losses])
    return stop, p


@pytest.mark.parametrize("losses, patience, stops", [
    ([5, 4, 4.5, 4.6], 2, True), ([5, 4, 4.5, 4.6], 3, False), ([5, 4, 3], 1, False),
    ([5, 4, 4], 1, True)])                      # a tie is not better
def test_early_stopping_counts_epochs_since_the_best(losses, patience, stops):
    stop, p = _stopper(losses, patience)
    stop.epoch_end(p)
    assert p.stop is stops and stop.stopped is stops
    again, q = _stopper(losses, patience)       # a resumed run stops before its next epoch
    again.epoch_begin(q)
    assert q.stop is stops


def test_a_run_that_stops_early_ends_as_finished_and_resumes_to_nothing(tmp_path, toy3,
                                                                       monkeypatch):
    d = _run(tmp_path, "run", epochs=6, patience=1)
    # valid_loss made to rise after epoch 1, whatever the training does
    monkeypatch.setattr(T, "TestLoss", _RisingValid)
    history = T.train(d, datasets=toy3, verbose=False)
    assert len(history) == 2                                          # 1 best + 1 patience
    assert T.train(d, datasets=toy3, verbose=False) == history        # stops again at once


class _RisingValid(T.TestLoss):
    def epoch_end(self, p):
        super().epoch_end(p)
        if self.prefix == "valid_":
            p.history[-1]["valid_loss"] = float(p.epoch)


def minivae(*args, cwd):
    return subprocess.run([sys.executable, "-m", "minivae", *args], cwd=cwd, text=True,
                          capture_output=True, check=False)


@pytest.mark.parametrize("flags, message", [
    (["--k", "5"], "--k applies to --objective iwae"),
    (["--objective", "iwae", "--beta", "2"], "--beta does not apply"),
    (["--objective", "iwae", "--warmup", "2"], "--warmup does not apply"),
    (["--init", "glorot", "--arch", "conv"], "dense layers"),
    (["--patience", "3"], "--patience applies to --validation on"),
    (["--optimizer", "sgd", "--adam-eps", "1e-4"], "--adam-eps applies to --optimizer adam"),
    (["--objective", "iwae", "--k", "0"], "--k"),
    (["--schedule", "linear"], "--schedule"),
    (["--model", "gan", "--validation", "on"], "--validation does not apply"),
    (["--model", "ae", "--output-bias", "data-mean"], "--output-bias data-mean applies to"),
    (["--model", "gan", "--adam-beta1", "0.9"], "--adam-beta1 does not apply"),
    (["--optimizer", "sgd", "--adam-beta1", "0.9"], "--adam-beta1 applies to --optimizer adam"),
    (["--arch", "conv", "--output-bias", "data-mean"], "--arch mlp"),
    (["--output-bias", "mean"], "--output-bias")])
def test_flags_that_do_not_fit_are_refused_in_one_line(tmp_path, flags, message):
    out = minivae("train", "--epochs", "1", "--out", str(tmp_path / "run"), *flags,
                  cwd=tmp_path)
    assert out.returncode == 2 or out.returncode == 1, out
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (tmp_path / "run").exists()


def test_the_command_line_trains_an_iwae_with_validation_and_evaluates_its_best(
        tmp_path, monkeypatch, capsys):
    from minivae.cli import main
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    code = main(["train", "--data", "sprites", "--objective", "iwae", "--k", "3",
                 "--activation", "tanh", "--init", "glorot", "--hidden", "16", "--latent", "2",
                 "--epochs", "2", "--validation", "on", "--adam-eps", "1e-4", "--no-figures",
                 "--iwae-k", "5", "--quiet", "--out", str(run)])
    assert code == 0, capsys.readouterr().err
    config = json.loads((run / rf.CONFIG).read_text())
    assert config["model"]["model"] == "iwae" and config["model"]["k"] == 3
    assert config["train"]["validation"] == "on"
    ev = json.loads((run / rf.EVALUATION).read_text())
    assert ev["checkpoint"] == rf.BEST and ev["nll_se"] > 0
    rows = [json.loads(line) for line in (run / rf.METRICS).read_text().splitlines()]
    assert ev["epochs"] == 1 + int(np.argmin([row["valid_loss"] for row in rows]))
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(run), "--k", "4"]) != 0
    assert "--k 4 differs from the run's 3" in capsys.readouterr().err


# ---- recipes ----

def _settings(*argv):
    from minivae.cli import train as cli_train
    from minivae.cli.parser import build_parser
    return cli_train._new_run_settings(build_parser().parse_args(["train", *argv]))


@pytest.mark.parametrize("name, objective, k", [
    ("burda2015-vae", "elbo", None), ("burda2015-iwae5", "iwae", 5),
    ("burda2015-iwae50", "iwae", 50)])
def test_a_burda2015_recipe_is_the_papers_protocol(name, objective, k):
    model, data_name, cfg = _settings("--recipe", name)
    assert data_name == "mnist" and cfg.binarize == "dynamic"
    assert model["model"] == ("iwae" if objective == "iwae" else "vae") and model.get("k") == k
    assert (model["hidden"], model["z_dim"], model["activation"], model["init"]) == \
        ([200, 200], 50, "tanh", "glorot")
    assert (cfg.batch_size, cfg.lr, cfg.adam_beta2, cfg.adam_eps, cfg.schedule, cfg.epochs) == \
        (20, 1e-3, 0.999, 5e-6, "burda2015", 3280)       # the paper's 1e-4, on a batch mean
    assert cfg.recipe == f"{name}@2" and cfg.validation == "off"
    assert (cfg.output_bias, cfg.adam_beta1) == ("data-mean", 0.99)     # the paper's code


def test_the_flags_the_refusal_of_version_1_names_give_version_1s_settings():
    from minivae import recipes
    _, _, cfg = _settings("--recipe", "burda2015-vae", *recipes.OLDER[1].split())
    assert (cfg.adam_beta1, cfg.adam_eps, cfg.output_bias) == (0.9, 1e-4, "init")
    assert cfg.recipe == "burda2015-vae@2 changed: --adam-beta1, --adam-eps, --output-bias"


def test_static_recipes_hold_out_the_validation_split_and_short_ones_are_labelled():
    _, data_name, cfg = _settings("--recipe", "static-vae")
    assert data_name == "binarized-mnist" and cfg.validation == "on" and cfg.binarize == "none"
    _, _, short = _settings("--recipe", "static-vae-short")
    assert short.epochs == 1093 and short.recipe == "static-vae-short@2"


def test_flags_beside_a_recipe_override_it_and_the_run_says_which():
    model, _, cfg = _settings("--recipe", "burda2015-iwae5", "--k", "2", "--epochs", "7")
    assert model["k"] == 2 and cfg.epochs == 7 and cfg.schedule == "burda2015"
    assert cfg.recipe == "burda2015-iwae5@2 changed: --epochs, --k"
    cfg.check()                                                 # a valid label, as saved
    # flags that repeat the recipe's values, and the seed, leave it the recipe
    _, _, same = _settings("--recipe", "static-vae", "--batch-size", "20", "--hidden", "200",
                           "200", "--data", "binarized-mnist", "--seed", "3")
    assert same.recipe == "static-vae@2"


@pytest.mark.parametrize("flags, message", [
    (["--recipe", "burda2016-vae"], "--recipe: expected one of burda2015-vae"),
    (["--recipe", "burda2015-vae@1"], ("older version: new runs start from the current one, "
                                      "burda2015-vae@2 (a run made from burda2015-vae@1 resumes "
                                      "as it was made); for version 1's settings add "
                                      "--adam-beta1 0.9 --adam-eps 1e-4 --output-bias init")),
    (["--recipe", "burda2015-vae@3"], "--recipe: expected one of"),
    (["--recipe", "burda2015-vae", "--model", "ae"], "trains a vae, not --model ae")])
def test_an_unknown_recipe_or_one_that_does_not_fit_is_refused(tmp_path, flags, message):
    out = minivae("train", "--out", str(tmp_path / "run"), *flags, cwd=tmp_path)
    assert out.returncode != 0 and message in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_a_run_of_an_iwae_refuses_a_warm_up(tmp_path, toy3):
    d = _run(tmp_path, "run", warmup=2)
    with pytest.raises(InputError, match="warmup applies to models with a KL term"):
        T.train(d, datasets=toy3, verbose=False)


def test_the_per_epoch_test_loss_of_an_iwae_decodes_as_many_rows_as_a_vaes():
    """mean_terms passes EVAL_BATCH // k examples at a time: k decoder rows each, so at most
    EVAL_BATCH rows at once, whatever k (not EVAL_BATCH k)."""
    from minivae.models import IWAE as IWAEModel
    from minivae.run.callbacks import EVAL_BATCH, mean_terms
    x = np.random.default_rng(0).random((EVAL_BATCH, 16)).astype(np.float32)
    for k in (1, 40):
        model = IWAEModel(16, hidden=(8,), z_dim=2, k=k, rng=0)
        seen, loss = [], model.loss
        model.loss = lambda xb, loss=loss, seen=seen: seen.append(len(xb)) or loss(xb)
        terms = mean_terms(model, x, "test_")
        assert max(seen) == EVAL_BATCH // k and sum(seen) == EVAL_BATCH
        assert np.isfinite(terms["test_loss"])


def test_a_recipe_run_resumed_with_other_epochs_or_rate_says_so(tmp_path):
    run = rf.create_run(tmp_path / "r", IWAE, "toy", TrainConfig(
        epochs=1093, recipe="burda2015-vae-short@1"))
    assert rf.retune(run, epochs=1093).train.recipe == "burda2015-vae-short@1"   # the same
    longer = rf.retune(run, epochs=3280)
    assert longer.train.recipe == "burda2015-vae-short@1 changed: --epochs"
    assert json.loads((run.dir / "config.json").read_text())["train"]["recipe"] == \
        "burda2015-vae-short@1 changed: --epochs"
    both = rf.retune(longer, lr=3e-4)                                # named once each
    assert both.train.recipe == "burda2015-vae-short@1 changed: --epochs, --lr"


def test_a_run_made_from_an_older_recipe_version_is_still_valid():
    TrainConfig(recipe="burda2015-vae@1").check()
    TrainConfig(recipe="burda2015-vae@7").check()
    TrainConfig(recipe="burda2015-vae@1 changed: --lr").check()
    for bad in ("burda2015-vae", "burda2015-vae@0", "nope@1", "burda2015-vae@1 changed: lr",
                "burda2015-vae@1 changed: ", "burda2015-vae@1 changed: --",
                "burda2015-vae@1 changed: --k,--lr"):
        with pytest.raises(InputError, match="recipe"):
            TrainConfig(recipe=bad).check()


# ---- the decoder's output bias at the data's mean ----

@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-6)])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "gaussian-learned"])
def test_start_at_mean_makes_the_decoder_output_the_data_mean_when_its_weights_are_zero(
        likelihood, dtype, rtol):
    """With the output layer's weights at zero, its output is its bias b, whatever z; so
    decode() (sigmoid(b) for bernoulli, b for a gaussian mean) must give m, clipped to
    [0.001, 0.999] for bernoulli."""
    from minivae.models import VAE
    m = np.array([0.0, 0.0005, 0.2, 0.5, 0.9, 1.0])
    vae = VAE(6, hidden=(5,), z_dim=2, likelihood=likelihood, rng=0, dtype=dtype)
    last = vae.decoder.layers[-1].params
    logvar_bias = last["b"][6:].copy()                         # gaussian-learned: untouched
    vae.start_at_mean(m)
    last["W"][...] = 0
    out = vae.decode(np.random.default_rng(1).standard_normal((3, 2)).astype(dtype))
    want = np.clip(m, 0.001, 0.999) if likelihood == "bernoulli" else m
    np.testing.assert_allclose(out, np.broadcast_to(want, (3, 6)), rtol=rtol, atol=1e-15)
    np.testing.assert_array_equal(last["b"][6:], logvar_bias)


def test_start_at_mean_refuses_what_it_cannot_use():
    from minivae.models import VAE
    vae = VAE(4, hidden=(3,), z_dim=2, rng=0)
    with pytest.raises(InputError, match=r"x_mean of shape \(4\)"):
        vae.start_at_mean(np.full(5, 0.5))
    with pytest.raises(InputError, match="in \\[0, 1\\] for a Bernoulli"):
        vae.start_at_mean(np.array([0.5, 0.5, 1.5, 0.5]))
    conv = VAE(16, hidden=(), z_dim=2, arch="conv", channels=(2, 2), rng=0)
    with pytest.raises(InputError, match="dense decoders"):
        conv.start_at_mean(np.full(16, 0.5))
    with pytest.raises(InputError, match="expected x_mean to be a numpy array"):
        vae.start_at_mean([0.5] * 4)


def test_a_run_of_a_model_without_an_output_bias_per_pixel_refuses_data_mean(tmp_path, toy3):
    d = rf.create_run(tmp_path / "ae", {"model": "ae", "x_dim": 16, "hidden": [8], "z_dim": 2},
                      "toy", TrainConfig(epochs=1, output_bias="data-mean")).dir
    with pytest.raises(InputError, match="output_bias data-mean applies to a vae"):
        T.train(d, datasets=(toy3[0], toy3[2]), verbose=False)


def test_a_run_made_before_output_bias_and_adam_beta1_existed_opens_with_what_it_used(
        tmp_path):
    d = rf.create_run(tmp_path / "old", IWAE, "toy", TrainConfig(epochs=1)).dir
    config = json.loads((d / "config.json").read_text())
    del config["train"]["output_bias"], config["train"]["adam_beta1"]
    (d / "config.json").write_text(json.dumps(config))
    train = rf.open_run(d).train
    assert (train.output_bias, train.adam_beta1) == ("init", 0.9)


def test_the_runs_adam_takes_its_beta1():
    from minivae.models import build
    from minivae.run.optimizers import make_optimizer
    model = build(IWAE, rng=0)
    assert make_optimizer(model, TrainConfig(adam_beta1=0.99)).b1 == 0.99
    assert make_optimizer(model, TrainConfig()).b1 == 0.9


def test_a_run_with_output_bias_data_mean_starts_there_and_a_resume_keeps_its_own(
        tmp_path, toy3):
    """The bias is set once, from the training split (not the validation or test images);
    a resumed run restores its trained bias, bit for bit as a run that never stopped."""
    x_train = toy3[0].x.astype(np.float64)
    d = _run(tmp_path, "start", epochs=1, lr=1e-12, schedule="constant",
             output_bias="data-mean")
    T.train(d, datasets=toy3, verbose=False)                   # a step too small to move it
    model, _ = rf.load_model(d)
    m = np.clip(x_train.mean(axis=0), 0.001, 0.999)
    np.testing.assert_allclose(model.decoder.layers[-1].params["b"], np.log(m / (1 - m)),
                               atol=1e-5)
    straight = _run(tmp_path, "straight", output_bias="data-mean")
    T.train(straight, datasets=toy3, verbose=False)
    resumed = _run(tmp_path, "resumed", epochs=2, output_bias="data-mean")
    T.train(resumed, datasets=toy3, verbose=False)
    T.train(resumed, datasets=toy3, verbose=False, epochs=4)
    _same(straight, resumed)


def test_adams_epsilon_on_a_batch_mean_is_the_papers_on_the_batch_sum_over_20():
    """Adam's step is unchanged when the gradient and epsilon are scaled together. The
    paper's code steps on the gradient of the batch's sum, 20 times minivae's batch mean, with
    epsilon 1e-4: in Adam's update that is epsilon 1e-4 / 20 on minivae's gradient (and not
    1e-4, version 1's)."""
    from minivae.optim import Adam
    rng = np.random.default_rng(0)
    grads = [rng.normal(0, 1e-4, 300) for _ in range(50)]               # batch-mean gradients
    p0 = rng.normal(size=300)

    def after(eps, scale):
        p = {"w": p0.copy()}
        opt = Adam(p, lr=1e-3, betas=(0.9, 0.999), eps=eps)
        for g in grads:
            opt.step({"w": scale * g})
        return p["w"]

    on_the_sum = after(1e-4, 20.0)                                      # 20 x the gradient
    np.testing.assert_allclose(after(5e-6, 1.0), on_the_sum, rtol=1e-12, atol=1e-15)
    assert np.abs(after(1e-4, 1.0) - on_the_sum).max() > 1e-5          # v1's: other steps
