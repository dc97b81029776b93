"""`minivae evaluate`, `sample` and `figures`: what a trained run shows."""

import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from minivae.errors import MinivaeError
from minivae.run import folder as rf
from minivae.run.generative import evaluate_generative, is_generative

IWAE_K = 100                        # importance samples for the IWAE NLL, unless --iwae-k
IWAE_K_MAX = 100_000                # 20 times the 5000 of the IWAE paper; MNIST's test set at
                                    # 10^5 already takes hours on 2 cores (a bar shows how many)
IMAGE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def _load(run_dir, split="test"):
    """The run's model (best.npz's, if it keeps one: validation on), its metadata, the split."""
    model, meta = rf.load_model(run_dir, best=True)
    return model, meta, rf.load_datasets(meta["run"]["data"], (split,))[0]


def evaluate_run(run_dir, iwae_k, split, seed, verbose=True):
    """The numbers of minivae.evaluate.evaluate for a run on one split, with what they are of:
    "epochs" finished, and "batches" of the next one (a run stopped mid-epoch). ``verbose``:
    a progress bar on a terminal."""
    from minivae.evaluate import evaluate, is_variational
    model, meta, ds = _load(run_dir, split)
    k = iwae_k if is_variational(model) else 0
    x = np.ascontiguousarray(rf.eval_x(ds, meta["run"]))
    with tqdm(total=len(x), desc=f"evaluating{f' (IWAE, k={k})' if k else ''}", unit="example",
              leave=False, file=sys.stderr, dynamic_ncols=True,
              disable=None if verbose else True) as bar:           # None: only on a terminal
        rng = np.random.default_rng(seed)
        if is_generative(model):                                   # WAE, GAN: and its samples
            train = rf.load_datasets(meta["run"]["data"], ("train",))[0]
            out = evaluate_generative(model, x, train, rng, progress=bar.update, y=ds.y)
        else:
            out = evaluate(model, x, iwae_k=k, rng=rng, progress=bar.update)
    best = (Path(run_dir) / rf.BEST).is_file()
    return {"run": str(run_dir), "model": meta["run"]["model"]["model"],
            "data": meta["run"]["data"], "split": split,
            "checkpoint": rf.BEST if best else rf.CHECKPOINT, "epochs": meta["progress"]["epoch"],
            "batches": meta["progress"]["batch"], **out}


def trained(m):
    """'3 epochs', or '3 epochs and 20 batches' of a run stopped in its 4th."""
    epochs = f"{m['epochs']} epoch{'s' * (m['epochs'] != 1)}"
    b = m.get("batches", 0)
    return epochs + (f" and {b} batch{'es' * (b != 1)} of epoch {m['epochs'] + 1}" if b else "")


def table(m):
    """The evaluation as aligned lines; per-dimension numbers as a small table."""
    best = " (best.npz: the best validation loss)" if m.get("checkpoint") == rf.BEST else ""
    lines = [(f"{m['model']} on {m['data']} ({m['split']}, {m['n']} examples), after "
              f"{trained(m)}{best}; nats per example")]
    rows = [("negative ELBO", "nelbo"), (f"IWAE NLL (k={m.get('iwae_k')})", "nll"),
            (f"loss = recon + {m.get('lam', 0):g} MMD^2", "loss"),
            ("reconstruction -log p(x|z)" if "kl" in m else "reconstruction loss", "recon"),
            ("KL(q(z|x) || p(z))", "kl"), ("MMD^2(codes, prior)", "mmd"),
            ("squared error of the mean" if "kl" in m else "squared error", "mse"),
            ("D's loss -V(D, G)", "d_loss"), ("G's loss", "g_loss"),
            ("D(real), mean", "d_real"), ("D(fake), mean", "d_fake")]
    lines += [f"  {label:<28}{m[k]:>12.4g}" if k == "mmd" else f"  {label:<28}{m[k]:>12.3f}"
              + (f" +- {m['nll_se']:.3f} (standard error over the examples)"
                 if k == "nll" and "nll_se" in m else "")
              for label, k in rows if k in m]
    for label, k in (("sample quality, MMD^2", "sample_mmd"),
                     ("  real images (expect 0)", "sample_mmd_real")):
        if k in m:
            lines.append(f"  {label:<28}{m[k]:>12.5f} +- {m[k + '_se']:.5f}")
    if "sample_mmd" in m:
        acc = m.get("classifier_accuracy")
        lines.append(f"  (MMD^2 in the features of a classifier, {m['quality_n']} samples"
                     + (f"; its accuracy {acc:.3f}" if acc is not None else "")
                     + "; lower is better)")
    if "kl_per_dim" in m:
        kl, s2, vm = m["kl_per_dim"], m["mean_sigma2"], m["var_mu"]
        lines.append(f"  {'active units':<28}{m['active_units']:>12d}   of {len(kl)} "
                     f"(Var mu > {m['au_threshold']})")
        lines.append("  dim        KL   mean sigma^2     Var mu   sum (law: -> 1)")
        lines += [f"  {j:>3} {kl[j]:>9.3f} {s2[j]:>14.4f} {vm[j]:>10.4f} {s2[j] + vm[j]:>11.4f}"
                  for j in np.argsort(kl)[::-1]]
    return "\n".join(lines)


def cmd_evaluate(args):
    m = evaluate_run(Path(args.run), args.iwae_k, args.split, args.seed)
    print(json.dumps(m, indent=2) if args.json else table(m))
    return 0


def cmd_sample(args):
    from minivae.evaluate import is_variational
    from minivae.figures import sample_grid
    out = Path(args.out) if args.out else Path(args.run) / "samples.png"
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        raise MinivaeError(f"--out {out}: expected an image file name ending in .png, .pdf, "
                           ".svg or .jpg")
    model, meta = rf.load_model(args.run)
    if not (is_variational(model) or is_generative(model)):
        raise MinivaeError(f"a {meta['run']['model']['model']} model has no prior to sample "
                           f"from (vae, wae and gan have); try `minivae figures {args.run}`")
    shape = rf.load_datasets(meta["run"]["data"], ("test",))[0].image_shape
    print(sample_grid(model, args.n, np.random.default_rng(args.seed), out, shape))
    return 0


def draw_figures(run_dir, seed):
    """Every figure that applies to the run, written into RUN/figures; their paths."""
    from minivae.figures import make_figures
    model, meta, ds = _load(run_dir)
    return make_figures(model, ds, meta["history"], Path(run_dir) / "figures",
                        np.random.default_rng(seed))


def cmd_figures(args):
    for path in draw_figures(Path(args.run), args.seed):
        print(path)
    return 0
