"""One number for the quality of generated images: the kernel MMD between samples and test
images, measured in the features of a small classifier that minivae trains on the same data.

    sample_mmd(clf, samples, test) = MMD^2_u(features(samples), features(test)),  imq kernel

Why these choices:

* *Features, not pixels.* In pixel space a blurred average digit is close to every digit, so
  a pixel distance rewards blur. A classifier's last hidden layer responds to what tells one
  digit from another (strokes, loops, their places), as the Inception network does for the
  FID and KID of the GAN literature; here a small MLP trained by minivae stands in for it.
* *The MMD, not the Frechet distance.* The unbiased MMD^2 estimator (``minivae.mmd``) has
  mean exactly MMD^2 at any sample size, so scores from small samples can be compared; the
  Frechet distance is biased by an amount that depends on the sample size, assumes Gaussian
  features, and needs a matrix square root. This is the KID of Binkowski et al. (2018), with
  minivae's inverse multiquadratic kernel in place of their cubic one.
* *A scale fixed by the reference.* C is the median squared distance between features of the
  test images, set once, so every model is scored with the same kernel.

The score is reported as a mean and standard error over disjoint blocks of samples. Real
images scored against the test set give 0 within its standard error (the estimator is unbiased,
so single estimates scatter around 0 and can be negative).
"""

import numpy as np

from minivae import losses
from minivae.checks import check_array, check_count
from minivae.errors import InputError
from minivae.layers import Sequential
from minivae.mmd import mmd, sq_distances
from minivae.models.base import EncoderDecoder, float_dtype, mlp, size, sizes


class FeatureClassifier(EncoderDecoder):
    """An MLP x_dim -> hidden -> n_classes with one logistic output per class, trained with
    ``minivae.train.fit`` on rows [x | one-hot label]; its features are the last hidden layer.

        encoder: x -> features (ReLU MLP)        decoder: features -> logits (linear)
        per example: sum_k bce_with_logits(logit_k, [label = k])     (one-vs-rest)

    ``fit`` hands a model rows of one array, so each row carries its image and its label side
    by side (``rows(x, y)``); ``loss`` splits them.
    """

    def __init__(self, x_dim, n_classes=10, hidden=(256, 64), rng=None, dtype=np.float32):
        who = "FeatureClassifier"
        self.x_dim, self.n_classes = size(x_dim, who, "x_dim"), size(n_classes, who, "n_classes")
        self.hidden = sizes(hidden, who)
        self.dtype = float_dtype(dtype, who)
        self.rng = np.random.default_rng(rng)
        D, H, K = self.x_dim, self.hidden, self.n_classes
        net = mlp((D, *H, K), "relu", self.rng, dtype, input_grad=False)   # x is data: no dx
        self.encoder = Sequential(*net.layers[:-1])                         # x -> features
        self.decoder = Sequential(net.layers[-1])                           # features -> logits
        self.cache, self.last = None, {}

    def rows(self, x, y):
        """[x | one-hot(y)]: what ``fit`` trains on.   x (N, D), y (N,) ints -> (N, D + K)."""
        check_array(x, "FeatureClassifier.rows", shape=(None, self.x_dim), dtype=self.dtype)
        y = np.asarray(y)
        if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer) or (
                y.min() < 0 or y.max() >= self.n_classes):
            raise InputError(f"FeatureClassifier.rows: expected y, {len(x)} labels in "
                             f"0..{self.n_classes - 1}, got {y.dtype} {y.shape}")
        return np.concatenate([x, np.eye(self.n_classes, dtype=self.dtype)[y]], axis=1)

    def loss(self, xy):
        """Batch mean of the one-vs-rest cross-entropy.   xy (N, D + K) = rows(x, y)."""
        check_array(xy, "FeatureClassifier.loss", shape=(None, self.x_dim + self.n_classes),
                    dtype=self.dtype, name="xy")
        x, onehot = xy[:, :self.x_dim], xy[:, self.x_dim:]                 # (N, D), (N, K)
        logits = self.decoder.forward(self.encoder.forward(x))             # (N, K)
        bce, dlogits = losses.bce_with_logits(logits, onehot)              # (N,), (N, K)
        self.cache = dlogits / len(xy)
        self.last = {"loss": bce}
        return float(bce.mean())

    def backward(self):
        self.encoder.backward(self.decoder.backward(self.cached()))

    def features(self, x, batch_size=1000):
        """The last hidden layer.   x (N, x_dim) -> (N, hidden[-1]) float64."""
        check_array(x, "FeatureClassifier.features", shape=(None, self.x_dim),
                    dtype=self.dtype)
        return np.concatenate([self.encoder.forward(x[i:i + batch_size]).astype(np.float64)
                               for i in range(0, len(x), batch_size)])

    def predict(self, x):
        """The most likely class.   x (N, x_dim) -> (N,) ints."""
        return self.decoder.forward(self.features(x).astype(self.dtype)).argmax(axis=1)


def median_scale(features, n=1000):
    """The median squared distance between the first n rows of ``features``: a kernel scale."""
    f = features[:n]
    r = sq_distances(f, f)
    return float(np.median(r[np.triu_indices(len(f), k=1)]))


def sample_mmd(clf, samples, reference, blocks=10, scale=None):
    """MMD^2_u between the classifier features of samples and of reference images (imq kernel,
    scale C = median_scale of the reference features unless given), over ``blocks`` disjoint
    blocks of each. -> (mean, standard error over the blocks).  (N, x_dim) each, N >= 2 blocks.
    """
    blocks = check_count(blocks, "sample_mmd", "blocks", lo=2)
    fs, fr = clf.features(samples), clf.features(reference)
    n = min(len(fs), len(fr)) // blocks
    if n < 2:
        raise InputError(f"sample_mmd: {blocks} blocks need at least {2 * blocks} samples and "
                         f"reference images, got {len(fs)} and {len(fr)}")
    C = median_scale(fr) if scale is None else scale
    values = [mmd(fs[i * n:(i + 1) * n], fr[i * n:(i + 1) * n], "imq", C)[0]
              for i in range(blocks)]
    return float(np.mean(values)), float(np.std(values, ddof=1) / np.sqrt(blocks))
