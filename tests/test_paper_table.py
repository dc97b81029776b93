"""benchmarks/paper_table.py: the README's table of the IWAE paper's rows comes from run folders.

The README's marked tables must be what the record renders, the record's numbers must be those
of real evaluations, and a run is recorded as its folder shows it, never with an evaluation of an
earlier point of the run or of another protocol, and never judged against the paper when its
flags changed the recipe.
"""

import json

import pytest

from benchmarks import paper_table as pt
from minivae import recipes


def test_readme_tables_are_the_records():
    record = json.loads(pt.RECORD.read_text())
    text = pt.README.read_text()
    assert pt.with_tables(text, record) == text, \
        "README differs from benchmarks/paper_table.json: python benchmarks/paper_table.py readme"


def test_record_holds_real_evaluations():
    record = json.loads(pt.RECORD.read_text())
    assert record["runs"] and record["date"] == max(r["recorded"] for r in record["runs"])
    for run in record["runs"]:
        assert run["recipe"] in pt.ROWS and run["recipe"] in recipes.PUBLISHED
        assert run["label"].startswith(run["recipe"])
        assert 0 < run["epochs"] <= run["epochs_planned"]
        e = run["evaluation"]
        if e is None:
            continue
        assert e["k"] == recipes.evaluation_k(run["recipe"]) and e["images"] == 10_000
        assert 0 < e["nll_se"] < 1 and e["nll"] < e["nelbo"], run["run"]
        assert 0 <= e["active_units"] <= 50
        assert run["epochs"] == run["epochs_planned"]


def entry(folder, date="2026-01-01"):
    """The record's entry for one run folder, read on ``date``."""
    return pt.record([folder], date)["runs"][0]


def make_run(folder, label="burda2015-vae-short@2", planned=4, done=4, evaluation=None,
             checkpoint="checkpoint.npz", valid=None, k=5000, seconds=(1800.0,)):
    """A run folder with the files minivae train writes, with made-up numbers: test_loss
    100 - epoch; ``valid`` the valid_loss of each epoch, if any; epoch_seconds cycling
    through ``seconds``."""
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(
        {"train": {"recipe": label, "epochs": planned}}))
    rows = [{"epoch": e, "test_loss": 100.0 - e, "epoch_seconds": seconds[e % len(seconds)]}
            for e in range(1, done + 1)]
    for row, v in zip(rows, valid or []):
        row["valid_loss"] = v
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if evaluation is not None:
        (folder / "evaluation.json").write_text(json.dumps(
            {"checkpoint": checkpoint, "epochs": evaluation, "split": "test", "iwae_k": k,
             "n": 10000, "nll": 87.0, "nll_se": 0.2, "nelbo": 91.0, "active_units": 20}))
    return folder


def test_a_run_as_its_folder_shows_it(tmp_path):
    part = entry(make_run(tmp_path / "a", done=2, seconds=(1800.0, 3600.0)))
    assert part["evaluation"] is None and part["epochs"] == 2
    assert part["curve"] == {"1": 99.0} and part["latest"] == 98.0
    assert part["hours"] == 1.5 and part["median_epoch_seconds"] == 2700.0
    assert ("epoch 2 of 4 when its folder was read on 2026-01-01, 1.5 h of epochs, a median of 2700.0 s an epoch, test "
            "negative ELBO 98.00") in pt.status(part, 86.76, 87.3)

    trained = entry(make_run(tmp_path / "b"))
    assert "not evaluated at k = 5000 yet" in pt.status(trained, 86.76, 87.3)

    done = entry(make_run(tmp_path / "c", evaluation=4))
    assert done["evaluation"]["nll"] == 87.0 and pt.schedule(done) == "4 epochs"
    assert "**within the target**, +0.24 nats" in pt.status(done, 86.76, 87.3)
    assert "0.30 above the target" in pt.status(done, 86.76, 86.7)
    assert "20 of 50 units active (the paper's: 19)" in pt.status(done, 86.76, 87.3, 19)
    assert "20 of 50 units active: " in pt.status(done, 86.76, 87.3, None)

    (tmp_path / "d").mkdir()                     # a run in its first epoch: no metrics yet
    (tmp_path / "d" / "config.json").write_text(json.dumps(
        {"train": {"recipe": "burda2015-vae@2", "epochs": 3280}}))
    first = entry(tmp_path / "d")
    assert first["epochs"] == 0 and first["median_epoch_seconds"] is None
    assert "epoch 0 of 3,280 when its folder was read on 2026-01-01, no epoch finished" in pt.status(first, 86.76, 87.3)


def test_an_evaluation_of_an_earlier_point_is_not_used(tmp_path):
    # a short run's folder continued to the whole schedule keeps its old evaluation.json:
    # just after the resume started, and once it has finished
    started = entry(make_run(tmp_path / "a", label="burda2015-vae-short@2 changed: --epochs",
                                   planned=3280, done=1093, evaluation=1093))
    assert started["evaluation"] is None
    ended = entry(make_run(tmp_path / "b", label="burda2015-vae-short@2 changed: --epochs",
                                 planned=3280, done=3280, evaluation=1093))
    assert ended["evaluation"] is None and ended["changed"] == []
    assert "the whole schedule (a `-short` run continued with `--epochs 3280`)" in \
        pt.status(ended, 86.76, 87.3)
    # best.npz is evaluated at the last epoch with the lowest validation bound
    best = entry(make_run(tmp_path / "c", label="static-vae-short@2", evaluation=3,
                                checkpoint="best.npz", valid=[5.0, 4.0, 3.0, 3.0]))
    assert best["evaluation"] is None                   # the tie at epoch 4 is the best
    best = entry(make_run(tmp_path / "d", label="static-vae-short@2", evaluation=4,
                                checkpoint="best.npz", valid=[5.0, 4.0, 3.0, 3.0]))
    assert best["evaluation"]["epoch"] == 4
    assert "the epoch with the best validation bound, 4, evaluated" in \
        pt.status(best, 88.71, 89.2)
    moved = entry(make_run(tmp_path / "e", label="static-vae-short@2 changed: --epochs",
                                 planned=3280, done=3280, evaluation=4, checkpoint="best.npz",
                                 valid=[5.0, 4.0, 3.0, 3.0] + [2.0] * 3276))
    assert moved["evaluation"] is None                  # the best epoch moved on
    early = entry(make_run(tmp_path / "f", label="static-vae-short@2", done=3,
                                 evaluation=3, checkpoint="best.npz", valid=[5.0, 4.0, 3.0]))
    assert early["evaluation"] is None


def test_another_protocol_or_changed_recipe_is_not_judged(tmp_path):
    other_k = entry(make_run(tmp_path / "a", evaluation=4, k=100))
    assert other_k["evaluation"] is None
    changed = entry(make_run(tmp_path / "b", evaluation=4, label=(
        "burda2015-vae-short@2 changed: --adam-beta1, --adam-eps, --output-bias")))
    assert changed["changed"] == ["--adam-beta1", "--adam-eps", "--output-bias"]
    text = pt.status(changed, 86.76, 87.3)
    assert "changed by `--adam-beta1`, `--adam-eps`, `--output-bias`" in text
    assert "+0.24 nats from the paper" in text and "target" not in text
    short_test = entry(make_run(tmp_path / "c", label="burda2015-vae@2 changed: --epochs",
                                      planned=40, done=40))
    assert short_test["changed"] == ["--epochs"] and pt.schedule(short_test) == "40 epochs"
    assert "Version 2, 40 epochs, changed by `--epochs`" in pt.status(short_test, 86.76, 87.3)


def test_a_short_run_and_its_continuation_share_a_column(tmp_path):
    short = entry(make_run(tmp_path / "a", evaluation=4))
    full = entry(make_run(tmp_path / "b", label="burda2015-vae-short@2 changed: --epochs",
                                planned=3280, done=40))
    cols = pt.columns([short, full])
    assert list(cols) == ["VAE v2, test negative ELBO"]
    assert cols["VAE v2, test negative ELBO"]["40"] == 60.0
    other = dict(full, curve={**full["curve"], "1": 5.0})          # not the same run
    assert len(pt.columns([short, other])) == 2


@pytest.mark.parametrize("config, message", [
    (None, "not a run folder: no config.json"),
    ("{", "config.json is not JSON"),
    ({"model": {}}, "no train settings"),
    ({"train": {"epochs": 4}}, "not made from a recipe"),
    ({"train": {"epochs": 4, "recipe": "burda2015-vae"}}, "is not NAME@VERSION"),
    ({"train": {"epochs": 4, "recipe": "burda2015-iwae50@2"}}, "not a row of the table")])
def test_bad_folders_are_refused(tmp_path, config, message):
    if config is not None:
        (tmp_path / "config.json").write_text(
            config if isinstance(config, str) else json.dumps(config))
    with pytest.raises(pt.TableError, match=message):
        pt.read_run(tmp_path)


def test_bad_metrics_and_readmes_are_refused(tmp_path):
    run = make_run(tmp_path / "a")
    (run / "metrics.jsonl").write_text('{"epoch": 1, "test_lo')            # cut short
    with pytest.raises(pt.TableError, match="metrics.jsonl holds a line that is not JSON"):
        pt.read_run(run)
    with pytest.raises(pt.TableError, match="named twice"):
        pt.record([make_run(tmp_path / "b"), tmp_path / "b"], "2026-01-01")
    record = {"date": "2026-01-01", "runs": []}
    with pytest.raises(pt.TableError, match="one <!-- paper-table -->"):
        pt.with_tables("no tables here", record)
    marked = "<!-- paper-table -->\nold\n<!-- /paper-table -->\n<!-- curve -->\n<!-- /curve -->"
    assert "| IWAE k = 5, same | 85.54 | ≤ 86.1 |" in pt.with_tables(marked, record)
    assert "not run" in pt.with_tables(marked, record)


def test_command_line_writes_and_checks(tmp_path, capsys):
    run = make_run(tmp_path / "run", evaluation=4)
    rec, readme = tmp_path / "record.json", tmp_path / "README.md"
    readme.write_text("x\n<!-- paper-table -->\n<!-- /paper-table -->\n"
                      "<!-- curve -->\n<!-- /curve -->\n")
    assert pt.main(["record", str(run), "--record", str(rec), "--date", "2026-01-02"]) == 0
    assert [r["recorded"] for r in json.loads(rec.read_text())["runs"]] == ["2026-01-02"]
    assert pt.main(["check", "--record", str(rec), "--readme", str(readme)]) == 1
    assert pt.main(["readme", "--record", str(rec), "--readme", str(readme)]) == 0
    assert pt.main(["check", "--record", str(rec), "--readme", str(readme)]) == 0
    assert "**87.00 ± 0.20**" in readme.read_text() and "(2026-01-02)" in readme.read_text()
    assert not list(tmp_path.glob("*.tmp"))
    assert pt.main(["record", str(tmp_path), "--record", str(rec)]) == 2
    assert "not a run folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        pt.main(["readme", str(run), "--record", str(rec), "--readme", str(readme)])


def test_record_keeps_the_runs_it_is_not_given(tmp_path, capsys):
    a = make_run(tmp_path / "a", done=2)
    b = make_run(tmp_path / "b", label="static-vae-short@2")
    rec = tmp_path / "record.json"
    assert pt.main(["check", "--record", str(rec)]) == 2                 # no record yet
    assert "does not exist" in capsys.readouterr().err
    assert pt.main(["record", str(a), str(b), "--record", str(rec), "--date", "2026-01-01"]) == 0
    (a / "metrics.jsonl").write_text((a / "metrics.jsonl").read_text() * 2)   # a trained on
    import shutil
    shutil.rmtree(b)                                              # b's folder is gone
    assert pt.main(["record", str(a), "--record", str(rec), "--date", "2026-01-05"]) == 0
    runs = json.loads(rec.read_text())
    assert runs["date"] == "2026-01-05"
    assert [(r["run"], r["epochs"], r["recorded"]) for r in runs["runs"]] == [
        ("a", 4, "2026-01-05"), ("b", 4, "2026-01-01")]
    assert pt.main(["forget", "a", "--record", str(rec)]) == 0
    runs = json.loads(rec.read_text())
    assert [r["run"] for r in runs["runs"]] == ["b"] and runs["date"] == "2026-01-01"
    assert pt.main(["forget", "a", "--record", str(rec)]) == 2
    assert "no run named a in the record (it holds b)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        pt.main(["forget", "--record", str(rec)])
