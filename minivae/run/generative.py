"""What `minivae evaluate` reports for the models judged by their samples: a WAE and a GAN.

    WAE   recon     mean reconstruction loss (nats for bernoulli, as a VAE's recon)
          mmd       MMD^2_u between the codes of x and as many draws of the prior N(0, I), with
                    the model's kernel; the mean over batches of ~500 examples
          loss      recon + lam * mmd, the objective as trained;  mse  sum_d (x^ - x)^2
    GAN   d_loss    D's loss on x and as many fakes G(z), -V(D, G) (2 log 2 = 1.386 when D
                    cannot tell them apart);  g_loss  G's loss on the same fakes
          d_real, d_fake   D's mean probability of "real" on x and on the fakes
    both  sample_mmd (and _se)   sample quality, below, and sample_mmd_real: real images'

Sample quality is ``minivae.quality.sample_mmd``: the unbiased MMD^2 (inverse multiquadratic
kernel, scale the median squared distance of the test images' features) between QUALITY_N
samples and QUALITY_N images of the split, in the last hidden layer of a D-256-64-K classifier
trained here on the training set, the same one for every run (seed 0), as a mean and standard
error over 10 blocks. It is the KID of Binkowski et al. (2018) with a small classifier in
place of the Inception network, lower is better. Its expectation is 0 for samples of the data
distribution; single estimates scatter around it and can be negative. sample_mmd_real scores
QUALITY_N training images the same way, what a perfect generator would score, and
classifier_accuracy says how well the classifier tells the split's classes apart. A data set
without labels (binarized-mnist), or a split of fewer than 20 images, has no score.
"""

import numpy as np

from minivae import losses
from minivae.errors import InputError
from minivae.optim import Adam
from minivae.quality import FeatureClassifier, sample_mmd
from minivae.train import fit

QUALITY_N = 2000            # samples, and images of the split, in the sample-quality score
CLASSIFIER_N = 20_000       # training images the feature classifier learns from (at most)
CLASSIFIER = {"hidden": (256, 64), "epochs": 3, "batch_size": 128, "lr": 3e-3, "seed": 0}
BLOCKS = 10                 # the score's mean and standard error are over this many blocks
BATCH = 500                 # examples per evaluation step
QUALITY_HELP = (
    "Sample quality (sample_mmd, a WAE's and a GAN's; lower is better; its expectation is 0 for "
    "samples of the data distribution, single estimates scatter around it and can be "
    "negative): the "
    f"KID of Binkowski et al. (2018) with a small classifier in place of Inception: the "
    f"unbiased MMD^2, inverse multiquadratic kernel, between {QUALITY_N:,} samples and "
    f"{QUALITY_N:,} images of the split in the last hidden layer of a D-256-64-classes MLP "
    f"that minivae trains on the training set ({CLASSIFIER['epochs']} epochs, seed 0), mean "
    "+- standard error over 10 blocks; sample_mmd_real is real training images' score, "
    "classifier_accuracy the classifier's on the split.")


def is_generative(model):
    """True for the models `evaluate` judges by their samples: a WAE (lam) and a GAN."""
    return hasattr(model, "discriminator") or hasattr(model, "lam")


def evaluate_generative(model, x, train, rng, progress=None, y=None):
    """The numbers above for ``model`` on x (N, D), the split's images as the run sees them;
    ``train``, the training Dataset, teaches the quality classifier, whose accuracy on the
    labels y (N,) of x, if given, is reported too. -> a dict of floats."""
    if len(x) < 2:
        raise InputError(f"evaluate: expected at least 2 examples, got {len(x)}")
    done = progress or (lambda n: None)
    x = np.ascontiguousarray(x, dtype=model.dtype)
    pieces = np.array_split(x, -(-len(x) // BATCH))                 # each >= 2 rows
    out = (_gan if hasattr(model, "discriminator") else _wae)(model, pieces, rng, done)
    return {**out, **sample_quality(model, x, train, rng, y), "n": len(x)}


def _wae(wae, pieces, rng, done):
    sums = {"recon": 0.0, "mmd": 0.0, "mse": 0.0}
    for xb in pieces:                                               # xb (B, D)
        z_prior = rng.standard_normal((len(xb), wae.z_dim), dtype=wae.dtype)   # (B, Z)
        wae.loss(xb, z_prior)                                       # fills wae.last
        sums["recon"] += float(wae.last["recon"].sum(dtype=np.float64))
        sums["mmd"] += float(wae.last["mmd"][0]) * len(xb)
        sums["mse"] += float(losses.mse(wae.reconstruct(xb), xb)[0].sum(dtype=np.float64))
        done(len(xb))
    n = sum(len(xb) for xb in pieces)
    m = {k: v / n for k, v in sums.items()}
    return {"loss": m["recon"] + wae.lam * m["mmd"], **m, "lam": wae.lam}


def _gan(gan, pieces, rng, done):
    sums = {"d_loss": 0.0, "g_loss": 0.0, "d_real": 0.0, "d_fake": 0.0}
    for xb in pieces:                                               # xb (B, D)
        z = rng.standard_normal((len(xb), gan.z_dim), dtype=gan.dtype)          # (B, Z)
        sums["d_loss"] += gan.d_loss(xb, z) * len(xb)              # B real, B fake
        sums["d_real"] += float(gan.last["d_real"].sum(dtype=np.float64))
        sums["d_fake"] += float(gan.last["d_fake"].sum(dtype=np.float64))
        sums["g_loss"] += gan.g_loss(z=z) * len(xb)                # the same fakes
        done(len(xb))
    n = sum(len(xb) for xb in pieces)
    return {k: v / n for k, v in sums.items()}


def feature_classifier(train):
    """The quality classifier, trained on (up to CLASSIFIER_N of) the training images; None
    for a data set without labels."""
    if train.y is None:
        return None
    c = CLASSIFIER
    rng = np.random.default_rng(c["seed"])
    take = rng.permutation(len(train.x))[:CLASSIFIER_N]
    x = np.ascontiguousarray(train.x[take], dtype=np.float32)
    clf = FeatureClassifier(x.shape[1], int(train.y.max()) + 1, hidden=c["hidden"], rng=rng)
    fit(clf, clf.rows(x, train.y[take]), Adam(clf.params, lr=c["lr"]), c["epochs"],
        c["batch_size"], rng=rng)
    return clf


def sample_quality(model, x, train, rng, y=None):
    """{"sample_mmd", "sample_mmd_se", "sample_mmd_real", "sample_mmd_real_se",
    "quality_n"} for ``model.sample`` against the images x (N, D); {} without labels. With
    the labels y (N,) of x, also "classifier_accuracy": a classifier that has not learned to
    tell the classes apart has features that do not either, and its score means little."""
    n = min(QUALITY_N, len(x), len(train.x))
    clf = feature_classifier(train) if n >= 2 * BLOCKS else None
    if clf is None:
        return {}
    ref = x[rng.permutation(len(x))[:n]].astype(np.float32)                  # (n, D)
    real = train.x[rng.permutation(len(train.x))[:n]].astype(np.float32)     # (n, D)
    fake = np.ascontiguousarray(model.sample(n, rng), dtype=np.float32)      # (n, D)
    score, se = sample_mmd(clf, fake, ref, BLOCKS)
    score_real, se_real = sample_mmd(clf, real, ref, BLOCKS)
    out = {"sample_mmd": score, "sample_mmd_se": se, "sample_mmd_real": score_real,
           "sample_mmd_real_se": se_real, "quality_n": n}
    if y is not None and len(y) == len(x):
        out["classifier_accuracy"] = float((clf.predict(x.astype(np.float32)) == y).mean())
    return out
