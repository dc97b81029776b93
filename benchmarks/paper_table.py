"""The importance-weighted autoencoder paper's table as minivae's recipes measured it.

Reads run folders made by ``minivae train --recipe ...`` (config.json, metrics.jsonl and the
final evaluation.json), writes what they measured to a record, and renders the README's
results table and curve from that record, so that every number there comes from a run folder:

    python benchmarks/paper_table.py record RUN [RUN ...]   # -> benchmarks/paper_table.json
    python benchmarks/paper_table.py readme                 # rewrite README's marked tables
    python benchmarks/paper_table.py check                  # exit 1 if README differs

Each run is recorded as it stands: still training, trained and waiting for its k = 5000
evaluation, or finished with the evaluation of its final checkpoint (or of its best
validation epoch, ``best.npz``, for the statically binarized rows). An evaluation.json left
over from an earlier point of the run (a short run continued with ``--epochs 3280``) is not
used. Hours are the sum of the runs' ``epoch_seconds``: time spent in epochs, evaluations and
pauses left out.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECORD = ROOT / "benchmarks" / "paper_table.json"
README = ROOT / "README.md"
STAGE_ENDS = (1, 4, 13, 40, 121, 364, 1093, 3280)      # last epoch of each stage, i = 0..7
SHORT_EPOCHS, FULL_EPOCHS = 1093, 3280
ROWS = {   # recipe: the row as the paper's table names it, the target test NLL, and the
    #        paper's active units (Table 1; its appendix D on static binarization gives none)
    "burda2015-vae": ("VAE k = 1, dynamic MNIST, 784-200-200-50 tanh", 87.3, 19),
    "burda2015-iwae5": ("IWAE k = 5, same", 86.1, 22),
    "static-vae": ("VAE k = 1, static binarized MNIST, same architecture", 89.2, None),
}
MARKS = {"table": ("<!-- paper-table -->", "<!-- /paper-table -->"),
         "curve": ("<!-- curve -->", "<!-- /curve -->")}


class TableError(Exception):
    """A run folder that is not a recipe's run, or a README without the marked tables."""


# ---- a run folder -> its record ----

def parse_label(label):
    """"burda2015-vae-short@2 changed: --epochs" -> ("burda2015-vae", 2, "short", "--epochs")."""
    head, _, changed = label.partition(" changed: ")
    name, _, version = head.partition("@")
    short = name.endswith("-short")
    return name.removesuffix("-short"), int(version), "short" if short else "full", changed


def read_run(folder):
    """What one run folder measured: {recipe, version, epochs, hours, curve, evaluation, ...}."""
    folder = Path(folder)
    try:
        config = json.loads((folder / "config.json").read_text())
        lines = (folder / "metrics.jsonl").read_text().splitlines()
    except FileNotFoundError as e:
        raise TableError(f"{folder} is not a run folder: no {Path(e.filename).name}") from None
    label = config["train"].get("recipe")
    if not label:
        raise TableError(f"{folder} was not made from a recipe (its config.json names none)")
    recipe, version, schedule, changed = parse_label(label)
    if recipe not in ROWS:
        raise TableError(f"{folder}: recipe {recipe!r} is not a row of the table "
                         f"(expected one of {', '.join(ROWS)})")
    epochs = [json.loads(line) for line in lines if line.strip()]
    planned = config["train"]["epochs"]
    run = {"run": folder.name, "recipe": recipe, "label": label, "version": version,
           "epochs_planned": planned, "epochs": len(epochs),
           "schedule": "full" if planned == FULL_EPOCHS else schedule,
           "hours": round(sum(e["epoch_seconds"] for e in epochs) / 3600, 2),
           "median_epoch_seconds": round(statistics.median(e["epoch_seconds"] for e in epochs), 2),
           "curve": {str(e): round(epochs[e - 1]["test_loss"], 2)
                     for e in STAGE_ENDS if e <= len(epochs)},
           "latest": round(epochs[-1]["test_loss"], 2) if epochs else None,
           "evaluation": None}
    if changed and changed != "--epochs":
        run["changed"] = changed
    run["evaluation"] = read_evaluation(folder, run)
    return run


def read_evaluation(folder, run):
    """The final k = 5000 evaluation, if there is one for the run as it stands, else None."""
    path = folder / "evaluation.json"
    if not path.exists():
        return None
    e = json.loads(path.read_text())
    finished = run["epochs"] == run["epochs_planned"]
    current = (e.get("checkpoint") == "checkpoint.npz" and e.get("epochs") == run["epochs"]
               or e.get("checkpoint") == "best.npz" and finished)
    if not (current and finished and "nll" in e):
        return None
    return {"checkpoint": e["checkpoint"], "epoch": e["epochs"], "k": e["iwae_k"],
            "images": e["n"], "nll": round(e["nll"], 2), "nll_se": round(e["nll_se"], 2),
            "nelbo": round(e["nelbo"], 2), "active_units": e["active_units"]}


def record(folders, date):
    return {"date": date, "runs": [read_run(f) for f in folders]}


# ---- the record -> the README's tables ----

def status(run, published, target, paper_units=None):
    """One run's part of its row's last cell."""
    what = "the whole schedule" if run["schedule"] == "full" else "`-short`"
    head = f"Version {run['version']}, {what}"
    if run["schedule"] == "full" and "-short" in run["label"]:
        head += " (a `-short` run continued with `--epochs 3280`)"
    done = f"{run['epochs']:,} epochs in {run['hours']:.1f} h of epochs"
    e = run["evaluation"]
    if run["epochs"] < run["epochs_planned"]:
        bound = "negative ELBO" if run["recipe"].endswith("vae") else "k = 5 bound"
        return (f"{head}: training: epoch {run['epochs']:,} of {run['epochs_planned']:,} after "
                f"{run['hours']:.1f} h of epochs, test {bound} {run['latest']:.2f}")
    if e is None:
        return f"{head}: {done}; its k = 5000 evaluation is running"
    at = ("" if e["checkpoint"] == "checkpoint.npz" else
          f", the epoch with the best validation bound, {e['epoch']:,}, evaluated")
    units = f" (the paper's: {paper_units})" if paper_units else ""
    gap = e["nll"] - target
    verdict = (f"**within the target**, {e['nll'] - published:+.2f} nats from the paper"
               if gap <= 0 else
               f"{e['nll'] - published:+.2f} nats from the paper, {gap:.2f} above the target")
    return (f"{head}: finished: {done}{at}: test NLL (k = {e['k']}, all {e['images']:,} images) "
            f"**{e['nll']:.2f} ± {e['nll_se']:.2f}**, negative ELBO {e['nelbo']:.2f}, "
            f"{e['active_units']} of 50 units active{units}: {verdict}")


def order(run):
    """Newest version first; at one version, the full schedule before the short one."""
    return (-run["version"], run["schedule"] != "full")


def table(rec):
    from minivae import recipes
    heading = ("| row | published (test NLL, nats) | target | command | where it stands "
               f"({rec['date']}) |")
    lines = [heading, "|---|---|---|---|---|"]
    for name, (row, target, units) in ROWS.items():
        published = recipes.PUBLISHED[name]
        runs = sorted((r for r in rec["runs"] if r["recipe"] == name), key=order)
        cell = ". ".join(status(r, published, target, units) for r in runs) or "not run"
        lines.append(f"| {row} | {published} | ≤ {target} | `minivae train --recipe {name}` "
                     f"| {cell} |")
    return "\n".join(lines)


def columns(runs):
    """{column heading: curve}, one column a recipe and version: a short run and its
    continuation to the whole schedule share one where their curves agree."""
    out = {}
    for r in sorted(runs, key=lambda r: (list(ROWS).index(r["recipe"]), r["version"],
                                         r["schedule"] == "full")):
        bound = "negative ELBO" if r["recipe"].endswith("vae") else "k = 5 bound"
        name = {"burda2015-vae": "VAE", "burda2015-iwae5": "IWAE k = 5",
                "static-vae": "static VAE"}[r["recipe"]]
        head = f"{name} v{r['version']}, test {bound}"
        before = out.get(head)
        if before is not None and any(before[e] != r["curve"].get(e, before[e]) for e in before):
            head = f"{name} v{r['version']}, {r['schedule']}, test {bound}"
        out[head] = {**(out.get(head) or {}), **r["curve"]}
    return out


def curve(rec):
    cols = columns(rec["runs"])
    lines = ["| epoch (end of stage) | step size | " + " | ".join(cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    for i, e in enumerate(STAGE_ENDS):
        cells = [f"{c[str(e)]:.2f}" if str(e) in c else "" for c in cols.values()]
        if any(cells):
            lines.append(f"| {e:,} | {1e-3 * 10 ** (-i / 7):.2e} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rendered(rec):
    return {"table": table(rec), "curve": curve(rec)}


def with_tables(text, rec):
    """text with what stands between each pair of MARKS replaced by the record's rendering."""
    for key, body in rendered(rec).items():
        start, end = MARKS[key]
        if text.count(start) != 1 or text.count(end) != 1:
            raise TableError(f"the README needs one {start} and one {end} around its {key}")
        a, b = text.index(start) + len(start), text.index(end)
        text = text[:a] + "\n" + body + "\n" + text[b:]
    return text


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    p.add_argument("what", choices=("record", "readme", "check"))
    p.add_argument("runs", nargs="*", help="run folders (record)")
    p.add_argument("--record", type=Path, default=RECORD)
    p.add_argument("--readme", type=Path, default=README)
    p.add_argument("--date", help="the date the record stands at (record; default today)")
    a = p.parse_args(argv)
    try:
        if a.what == "record":
            if not a.runs:
                p.error("record needs the run folders to read")
            import datetime
            rec = record(a.runs, a.date or datetime.date.today().isoformat())
            tmp = a.record.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(rec, indent=1) + "\n")
            tmp.replace(a.record)
            print(f"wrote {a.record}: {len(rec['runs'])} runs")
            return 0
        rec = json.loads(a.record.read_text())
        text = a.readme.read_text()
        new = with_tables(text, rec)
        if a.what == "check":
            print("README's tables match the record" if new == text else
                  f"README's tables differ from {a.record}: run `readme`")
            return int(new != text)
        tmp = a.readme.with_suffix(".md.tmp")
        tmp.write_text(new)
        tmp.replace(a.readme)
        print(f"rewrote the tables of {a.readme}")
        return 0
    except TableError as e:
        print(f"paper_table: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
