"""The importance-weighted autoencoder paper's table as minivae's recipes measured it.

Reads run folders made by ``minivae train --recipe ...`` (config.json, metrics.jsonl and the
final evaluation.json), writes what they measured to a record, and renders the README's
results table and curve from that record, so that every number there comes from a run folder:

    python benchmarks/paper_table.py record RUN [RUN ...]   # -> benchmarks/paper_table.json
    python benchmarks/paper_table.py forget NAME [NAME ...] # drop runs from the record
    python benchmarks/paper_table.py readme                 # rewrite README's marked tables
    python benchmarks/paper_table.py check                  # exit 1 if README differs

``record`` adds the runs it is given, or replaces their earlier entries, and keeps every other
run already in the record: each entry says on which date its folder was read, so runs made on
different machines, or whose folders are gone, keep what was last read of them.

A run is recorded as its folder shows it: the epochs it has trained so far (whether it is
still training or was stopped, the folder cannot tell), and the recipe's evaluation (k = 5000
on all 10,000 test images) only if it was made of the run as it stands: of the last epoch's
checkpoint.npz, or, for the statically binarized rows, of best.npz at the epoch with the lowest
validation bound once training has finished. An evaluation.json left over from an earlier point
of the run (a short run continued with ``--epochs 3280``, whose best epoch may have moved) is
not used. A run whose flags changed the recipe other than to run the whole schedule is shown
with those flags and not judged against the target. Hours are the sum of the runs'
``epoch_seconds``: time spent in epochs; evaluations and pauses are left out.
"""

import argparse
import datetime
import json
import re
import statistics
import sys
from pathlib import Path

from minivae import recipes

ROOT = Path(__file__).resolve().parent.parent
RECORD = ROOT / "benchmarks" / "paper_table.json"
README = ROOT / "README.md"
STAGE_ENDS = (1, 4, 13, 40, 121, 364, 1093, 3280)      # last epoch of each stage, i = 0..7
SCHEDULES = {1093: "`-short`", 3280: "the whole schedule"}
TEST_IMAGES = 10_000
ROWS = {   # recipe: the row as the paper's table names it, the target test NLL, the paper's
    #        active units (Table 1; its appendix D on static binarization gives none), the
    #        model's short name and the bound its metrics.jsonl logs each epoch
    "burda2015-vae": ("VAE k = 1, dynamic MNIST, 784-200-200-50 tanh", 87.3, 19,
                      "VAE", "negative ELBO"),
    "burda2015-iwae5": ("IWAE k = 5, same", 86.1, 22, "IWAE k = 5", "k = 5 bound"),
    "static-vae": ("VAE k = 1, static binarized MNIST, same architecture", 89.2, None,
                   "static VAE", "negative ELBO"),
}
LABEL = re.compile(r"(?P<name>[a-z0-9-]+)@(?P<version>\d+)( changed: (?P<changed>.+))?")
MARKS = {"table": ("<!-- paper-table -->", "<!-- /paper-table -->"),
         "curve": ("<!-- curve -->", "<!-- /curve -->")}


class TableError(Exception):
    """A run folder that is not a recipe's run, or a README without the marked tables."""


# ---- a run folder -> its record ----

def read_json(path, folder):
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise TableError(f"{folder}: {path.name} is not JSON ({e})") from None


def read_run(folder):
    """What one run folder measured: {recipe, version, epochs, hours, curve, evaluation, ...}."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise TableError(f"{folder} is not a run folder: no config.json")
    config = read_json(folder / "config.json", folder)
    train = config.get("train") if isinstance(config, dict) else None
    if not isinstance(train, dict) or not isinstance(train.get("epochs"), int):
        raise TableError(f"{folder}: config.json has no train settings with its epochs")
    label = train.get("recipe")
    if not label:
        raise TableError(f"{folder} was not made from a recipe (its config.json names none)")
    m = LABEL.fullmatch(label)
    if not m:
        raise TableError(f"{folder}: recipe label {label!r} is not NAME@VERSION[ changed: ...]")
    recipe = m["name"].removesuffix("-short")
    if recipe not in ROWS:
        raise TableError(f"{folder}: recipe {recipe!r} is not a row of the table "
                         f"(expected one of {', '.join(ROWS)})")
    path = folder / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []   # none before epoch 1 ends
    try:
        epochs = [json.loads(line) for line in lines if line.strip()]
    except json.JSONDecodeError as e:
        raise TableError(f"{folder}: metrics.jsonl holds a line that is not JSON ({e})") from None
    seconds = [e["epoch_seconds"] for e in epochs]
    planned = train["epochs"]
    changed = [f for f in (m["changed"] or "").split(", ") if f and not (
        f == "--epochs" and planned in SCHEDULES)]          # the whole schedule is the recipe's
    run = {"run": folder.name, "recipe": recipe, "label": label, "version": int(m["version"]),
           "changed": changed, "epochs_planned": planned, "epochs": len(epochs),
           "hours": round(sum(seconds) / 3600, 2),
           "median_epoch_seconds": round(statistics.median(seconds), 2) if seconds else None,
           "curve": {str(e): round(epochs[e - 1]["test_loss"], 2)
                     for e in STAGE_ENDS if e <= len(epochs)},
           "latest": round(epochs[-1]["test_loss"], 2) if epochs else None}
    run["evaluation"] = read_evaluation(folder, run, epochs)
    return run


def best_epoch(epochs):
    """The epoch best.npz holds: the last with the lowest valid_loss (the trainer keeps ties)."""
    losses = [e["valid_loss"] for e in epochs]
    return max(i + 1 for i, v in enumerate(losses) if v == min(losses))


def read_evaluation(folder, run, epochs):
    """The recipe's final evaluation of the run as it stands, or None if there is none."""
    path = folder / "evaluation.json"
    if not path.exists() or run["epochs"] != run["epochs_planned"]:
        return None
    e = read_json(path, folder)
    if e.get("checkpoint") == "checkpoint.npz":
        current = e.get("epochs") == run["epochs"]
    elif e.get("checkpoint") == "best.npz" and all("valid_loss" in r for r in epochs):
        current = e.get("epochs") == best_epoch(epochs)
    else:
        current = False
    protocol = (e.get("split") == "test" and e.get("n") == TEST_IMAGES
                and e.get("iwae_k") == recipes.evaluation_k(run["recipe"]))
    if not (current and protocol and "nll" in e):
        return None
    return {"checkpoint": e["checkpoint"], "epoch": e["epochs"], "k": e["iwae_k"],
            "images": e["n"], "nll": round(e["nll"], 2), "nll_se": round(e["nll_se"], 2),
            "nelbo": round(e["nelbo"], 2), "active_units": e["active_units"]}


def record(folders, date, earlier=None):
    """The record with the runs in ``folders`` read on ``date``, added to the runs of the
    ``earlier`` record (an entry of the same name is replaced where it stood)."""
    runs = [{**read_run(f), "recorded": date} for f in folders]
    names = [r["run"] for r in runs]
    if len(set(names)) < len(names):
        raise TableError(f"a run folder is named twice: {', '.join(names)}")
    new = dict(zip(names, runs))
    kept = [new.pop(r["run"], r) for r in (earlier or {"runs": []})["runs"]]
    runs = kept + list(new.values())
    return {"date": max(r["recorded"] for r in runs), "runs": runs}


def forget(rec, names):
    """The record without the runs named (each must be in it)."""
    missing = sorted(set(names) - {r["run"] for r in rec["runs"]})
    if missing:
        raise TableError(f"no run named {', '.join(missing)} in the record (it holds "
                         f"{', '.join(r['run'] for r in rec['runs']) or 'none'})")
    runs = [r for r in rec["runs"] if r["run"] not in names]
    return {"date": max((r["recorded"] for r in runs), default=rec["date"]), "runs": runs}


# ---- the record -> the README's tables ----

def schedule(run):
    return SCHEDULES.get(run["epochs_planned"], f"{run['epochs_planned']:,} epochs")


def status(run, published, target, paper_units=None):
    """One run's part of its row's last cell."""
    head = f"Version {run['version']}, {schedule(run)}"
    if run["epochs_planned"] == 3280 and "-short" in run["label"]:
        head += " (a `-short` run continued with `--epochs 3280`)"
    if run["changed"]:
        head += f", changed by {', '.join(f'`{f}`' for f in run['changed'])}"
    pace = (f"{run['hours']:.1f} h of epochs, a median of {run['median_epoch_seconds']:.1f} s "
            "an epoch" if run["epochs"] else "no epoch finished")
    if run["epochs"] < run["epochs_planned"]:
        bound = ROWS[run["recipe"]][4]
        latest = f", test {bound} {run['latest']:.2f}" if run["epochs"] else ""
        return (f"{head}: epoch {run['epochs']:,} of {run['epochs_planned']:,} when its "
                f"folder was read on {run['recorded']}, {pace}{latest}")
    e = run["evaluation"]
    if e is None:
        return (f"{head}: {run['epochs']:,} epochs in {pace}; not evaluated at k = 5000 yet "
                "(`minivae train --resume --out RUN` evaluates it)")
    at = ("" if e["checkpoint"] == "checkpoint.npz" else
          f"; the epoch with the best validation bound, {e['epoch']:,}, evaluated")
    units = f" (the paper's: {paper_units})" if paper_units else ""
    gap = e["nll"] - target
    verdict = (f": {e['nll'] - published:+.2f} nats from the paper" if run["changed"] else
               f": **within the target**, {e['nll'] - published:+.2f} nats from the paper"
               if gap <= 0 else
               f": {e['nll'] - published:+.2f} nats from the paper, {gap:.2f} above the target")
    return (f"{head}: finished: {run['epochs']:,} epochs in {pace}{at}: test NLL (k = {e['k']}, "
            f"all {e['images']:,} images) **{e['nll']:.2f} ± {e['nll_se']:.2f}**, negative "
            f"ELBO {e['nelbo']:.2f}, {e['active_units']} of 50 units active{units}{verdict}")


def order(run):
    """Newest version first; at one version, the longest schedule first."""
    return (-run["version"], -run["epochs_planned"], bool(run["changed"]))


def table(rec):
    heading = ("| row | published (test NLL, nats) | target | command | where it stands "
               f"({rec['date']}) |")
    lines = [heading, "|---|---|---|---|---|"]
    for name, (row, target, units, _, _) in ROWS.items():
        published = recipes.PUBLISHED[name]
        runs = sorted((r for r in rec["runs"] if r["recipe"] == name), key=order)
        cell = ". ".join(status(r, published, target, units) for r in runs) or "not run"
        lines.append(f"| {row} | {published} | ≤ {target} | `minivae train --recipe {name}` "
                     f"| {cell} |")
    lines += ["", ("Each run's entry was read from its folder (outside the repository) by "
              "`python benchmarks/paper_table.py record RUN`, on the date its entry in the "
              "record gives.")]
    return "\n".join(lines)


def columns(runs):
    """{column heading: curve}, one column a recipe and version: a short run and its
    continuation to the whole schedule share one where their curves agree; runs with changed
    settings get their own."""
    out = {}
    for r in sorted(runs, key=lambda r: (list(ROWS).index(r["recipe"]), r["version"],
                                         r["epochs_planned"])):
        _, _, _, name, bound = ROWS[r["recipe"]]
        changed = f" {' '.join(r['changed'])}" if r["changed"] else ""
        head = f"{name} v{r['version']}{changed}, test {bound}"
        before = out.get(head)
        if before is not None and any(before[e] != r["curve"].get(e, before[e]) for e in before):
            out[f"{name} v{r['version']}{changed}, {schedule(r)} run, test {bound}"] = r["curve"]
        else:
            out[head] = {**(before or {}), **r["curve"]}
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


def write(path, text):
    """Write text to path through a temporary file: never half-written."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    p.add_argument("what", choices=("record", "forget", "readme", "check"))
    p.add_argument("runs", nargs="*", help="run folders (record) or run names (forget)")
    p.add_argument("--record", type=Path, default=RECORD,
                   help="the record (default: benchmarks/paper_table.json)")
    p.add_argument("--readme", type=Path, default=README, help="the README with the tables")
    p.add_argument("--date", help="the date the run folders are read on (record; default today)")
    a = p.parse_args(argv)
    if (a.what in ("record", "forget")) != bool(a.runs):
        p.error("record reads the run folders given, forget drops the runs named; readme and "
                "check take none")
    try:
        earlier = read_json(a.record, a.record.parent) if a.record.exists() else None
        if a.what in ("record", "forget"):
            if a.what == "record":
                rec = record(a.runs, a.date or datetime.date.today().isoformat(), earlier)
            elif earlier is None:
                raise TableError(f"{a.record} does not exist: there is nothing to forget")
            else:
                rec = forget(earlier, a.runs)
            write(a.record, json.dumps(rec, indent=1) + "\n")
            print(f"wrote {a.record}: {len(rec['runs'])} runs")
            return 0
        if earlier is None:
            raise TableError(f"{a.record} does not exist: make it with `record RUN ...`")
        rec = earlier
        text = a.readme.read_text()
        new = with_tables(text, rec)
        if a.what == "check":
            print("README's tables match the record" if new == text else
                  f"README's tables differ from {a.record}: run `readme`")
            return int(new != text)
        write(a.readme, new)
        print(f"rewrote the tables of {a.readme}")
        return 0
    except TableError as e:
        print(f"paper_table: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
