"""Recipes: named, versioned settings of `minivae train` that reproduce a published result, each
with the evaluation its paper reports.

    minivae train --recipe burda2015-vae --out runs/burda-vae       # then evaluates at k = 5000

Burda, Grosse & Salakhutdinov (2015), one stochastic layer: 784-200-200-50 (two deterministic
tanh layers of 200 in encoder and decoder, 50 latent units), Bernoulli likelihood, Glorot's
initialisation, Adam (beta2 = 0.999, epsilon = 1e-4), batches of 20, the learning rate
1e-3 * 10^(-i/7) for 3^i epochs, i = 0..7 (3280 epochs), trained on the 60,000 MNIST training
images binarized afresh each epoch; test NLL by the k = 5000 bound on all 10,000 test images
(their Table 1: VAE 86.76, IWAE k = 5 85.54, IWAE k = 50 84.78 nats). Their appendix D trains
the same on the statically binarized MNIST (VAE 88.71, IWAE k = 5 87.63); there minivae holds
out the official 10,000 validation images and evaluates the epoch that did best on them.

The table's numbers come from the paper's published code (its README says so), and the
recipes follow that code in three settings:
- the decoder's output bias starts at the logit of each pixel's training mean
  (`--output-bias data-mean`);
- Adam's beta1 is 0.99 (`--adam-beta1`);
- its gradient is that of the batch's *sum* of 20 examples, minivae's that of the batch's
  mean, 20 times smaller. Scaling the gradient and epsilon together leaves Adam's step as it
  was (tests/test_paper_protocol.py checks it), so their epsilon 1e-4 is 1e-4 / 20 here.
Left as minivae does them (the usual choices; what each costs or gains here is not measured):
their Adam starts its second moment at 1, not 0, which damps the steps of the first two or
three epochs, and uses the moments of the step before; they train on 59,600 images (400 held
out), in the same order every epoch; their VAE samples its KL term where minivae's is exact;
their step sizes are rounded to two digits (7.2e-4, 5.2e-4, ...).

A "-short" recipe is the same with the first seven of the eight stages (1093 epochs, the rate
down to 1.4e-4 instead of 1e-4): clearly not the paper's schedule, and a third of its time. How
long a recipe takes on one machine: the median of its run's ``epoch_seconds`` in metrics.jsonl
times its epochs (the README gives them for this project's runs); an IWAE step decodes k rows
an example, so k = 50 takes about ten times as long as k = 5.

Versions: 2 adds the three settings of the published code above; version 1 had beta1 0.9,
epsilon 1e-4 on the batch mean and the output bias at zero. A run made from version 1
still resumes as it was made (its label says @1).

Flags given beside --recipe override its values, and the run says so: a recipe's version is
saved with the run, in config.json, as "recipe": "NAME@VERSION", followed by the flags that
changed it, "NAME@VERSION changed: --epochs, --k" (a resume's --epochs and --lr included).
"""

PAPER = {"hidden": (200, 200), "latent": 50, "activation": "tanh", "init": "glorot",
         "likelihood": "bernoulli", "batch_size": 20, "lr": 1e-3, "optimizer": "adam",
         "adam_beta1": 0.99, "adam_beta2": 0.999, "adam_eps": 1e-4 / 20,   # see above
         "schedule": "burda2015", "epochs": 3280, "output_bias": "data-mean"}
DYNAMIC = {**PAPER, "data": "mnist", "binarize": "dynamic"}
STATIC = {**PAPER, "data": "binarized-mnist", "validation": "on"}
SHORT = {"epochs": 1 + 3 + 9 + 27 + 81 + 243 + 729}              # stages i = 0..6

RECIPES = {                    # name: (version, settings, IWAE k of the final evaluation)
    "burda2015-vae": (2, {**DYNAMIC, "objective": "elbo"}, 5000),
    "burda2015-iwae5": (2, {**DYNAMIC, "objective": "iwae", "k": 5}, 5000),
    "burda2015-iwae50": (2, {**DYNAMIC, "objective": "iwae", "k": 50}, 5000),
    "static-vae": (2, {**STATIC, "objective": "elbo"}, 5000),
    "static-iwae5": (2, {**STATIC, "objective": "iwae", "k": 5}, 5000),
}
RECIPES.update({f"{name}-short": (version, {**settings, **SHORT}, k)
                for name, (version, settings, k) in list(RECIPES.items())})
OLDER = {1: "--adam-beta1 0.9 --adam-eps 1e-4 --output-bias init"}  # version: the flags
#                                          that make the current version what it was then
PUBLISHED = {"burda2015-vae": 86.76, "burda2015-iwae5": 85.54, "burda2015-iwae50": 84.78,
             "static-vae": 88.71, "static-iwae5": 87.63}    # test NLL, nats (Burda et al.)


def settings(name):
    """The settings of recipe ``name``: {setting: value}, as `minivae train`'s flags name them."""
    return dict(RECIPES[name][1])


def label(name):
    """"NAME@VERSION", as a run records it."""
    return f"{name}@{RECIPES[name][0]}"


CHANGED = " changed: "


def label_changed(recipe_label, flags):
    """The label of a run made from a recipe with ``flags`` (a list) changing it; flags it
    already names are not named twice."""
    head, _, before = recipe_label.partition(CHANGED)
    named = before.split(", ") if before else []
    named += [f for f in flags if f not in named]
    return head + (CHANGED + ", ".join(named) if named else "")


def resumed_label(recipe_label, epochs, lr):
    """The label once a resume sets ``epochs`` and ``lr``: --epochs and --lr added where
    they differ from the recipe's (a -short run taken on to 3280 epochs says so)."""
    name = recipe_label.partition("@")[0]
    own = RECIPES[name][1]
    return label_changed(recipe_label, [f"--{k}" for k, v in (("epochs", epochs), ("lr", lr))
                                        if k in own and v != own[k]])


def evaluation_k(name):
    """The importance samples of the recipe's final IWAE evaluation."""
    return RECIPES[name][2]
