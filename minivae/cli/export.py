"""`minivae export RUN`: a trained VAE's decoder and test codes, for the explorer page."""

from pathlib import Path

import numpy as np

from minivae import export
from minivae.errors import MinivaeError

FASHION = ("T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
           "bag", "ankle boot")


def add_parser(sub, number):
    """Add `export` to the subcommands ``sub``; ``number`` makes an argparse type for ranges."""
    x = sub.add_parser(
        "export", help="write a VAE's decoder and test codes for the explorer page",
        description="Write a trained VAE's decoder (dense layers only) and the latent means "
                    "mu(x) of test examples, with their labels, into one JSON file that the "
                    "site's latent-space explorer loads and decodes in the browser.")
    x.add_argument("run", metavar="RUN", help="a run folder made by `minivae train`")
    x.add_argument("--out", metavar="FILE.json",
                   help="file to write (default: RUN/export.json)")
    x.add_argument("--n", type=number(int, 1), default=export.N_CODES,
                   help=f"test examples whose codes the file holds (default: {export.N_CODES}"
                        "; all of them if the test set is smaller)")
    x.add_argument("--seed", type=number(int, 0), default=0,
                   help="seed of the choice of test examples (default: 0)")
    x.set_defaults(func=cmd_export)


def label_names(name, y):
    """Names of the labels of data set ``name``, or None when there are none."""
    if y is None:
        return None
    if name == "sprites":
        from minivae.data.sprites import SHAPES
        return list(SHAPES)
    if name == "fashion-mnist":
        return list(FASHION)
    return [str(v) for v in range(int(y.max()) + 1)]


def cmd_export(args):
    from minivae.run import folder as rf
    out = Path(args.out) if args.out else Path(args.run) / "export.json"
    if out.suffix.lower() != ".json":
        raise MinivaeError(f"--out {out}: expected a file name ending in .json")
    model, meta = rf.load_model(args.run)
    run = meta["run"]
    ds = rf.load_datasets(run["data"], ("test",))[0]
    keep = export.pick_examples(len(ds), args.n, args.seed)
    x = np.ascontiguousarray(rf.eval_x(ds, run)[keep])
    y = None if ds.y is None else ds.y[keep]
    factors = None if ds.factors is None else ds.factors[keep]
    doc = export.export_vae(
        model, x, labels=y, label_names=label_names(run["data"], ds.y), factors=factors,
        factor_names=ds.factor_names, image_shape=ds.image_shape,
        about={"data": run["data"], "epochs": meta["progress"]["epoch"]})
    export.write_export(out, doc)
    print(f"wrote {out}: a {doc['z_dim']}-d decoder of {len(doc['layers'])} layers and the "
          f"codes of {len(keep)} test examples")
    return 0
