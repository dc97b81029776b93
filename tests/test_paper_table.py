"""benchmarks/paper_table.py: the README's table of the IWAE paper's rows comes from run folders.

The README's marked tables must be what the record renders, the record's numbers must be those
of real evaluations, and a run is recorded as it stands (training, waiting for its evaluation,
finished), never with an evaluation of an earlier point of the run.
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
    assert record["runs"]
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


def make_run(folder, label="burda2015-vae-short@2", planned=4, done=4, evaluation=None,
             checkpoint="checkpoint.npz"):
    """A run folder with the files minivae train writes, with made-up numbers."""
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(
        {"train": {"recipe": label, "epochs": planned}}))
    (folder / "metrics.jsonl").write_text("".join(
        json.dumps({"epoch": e, "test_loss": 100.0 - e, "epoch_seconds": 1800.0}) + "\n"
        for e in range(1, done + 1)))
    if evaluation is not None:
        (folder / "evaluation.json").write_text(json.dumps(
            {"checkpoint": checkpoint, "epochs": evaluation, "iwae_k": 5000, "n": 10000,
             "nll": 87.0, "nll_se": 0.2, "nelbo": 91.0, "active_units": 20}))
    return folder


def test_a_run_as_it_stands(tmp_path):
    training = pt.read_run(make_run(tmp_path / "a", done=2))
    assert training["evaluation"] is None and training["epochs"] == 2
    assert training["curve"] == {"1": 99.0} and training["latest"] == 98.0
    assert training["hours"] == 1.0
    assert "training: epoch 2 of 4" in pt.status(training, 86.76, 87.3)

    waiting = pt.read_run(make_run(tmp_path / "b"))
    assert "evaluation is running" in pt.status(waiting, 86.76, 87.3)

    done = pt.read_run(make_run(tmp_path / "c", evaluation=4))
    assert done["evaluation"]["nll"] == 87.0 and done["schedule"] == "short"
    assert "**within the target**, +0.24 nats" in pt.status(done, 86.76, 87.3)
    assert "0.30 above the target" in pt.status(done, 86.76, 86.7)
    assert "20 of 50 units active (the paper's: 19)" in pt.status(done, 86.76, 87.3, 19)
    assert "20 of 50 units active: " in pt.status(done, 86.76, 87.3, None)


def test_an_evaluation_of_an_earlier_point_is_not_used(tmp_path):
    # a short run's folder continued to the whole schedule keeps its old evaluation.json
    go_on = make_run(tmp_path / "a", label="burda2015-vae-short@2 changed: --epochs",
                     planned=3280, done=3280, evaluation=1093)
    run = pt.read_run(go_on)
    assert run["evaluation"] is None and run["schedule"] == "full"
    assert "continued with `--epochs 3280`" in pt.status(run, 86.76, 87.3)
    # the best validation epoch's checkpoint is evaluated when training has finished
    best = pt.read_run(make_run(tmp_path / "b", label="static-vae-short@2", evaluation=3,
                                checkpoint="best.npz"))
    assert best["evaluation"]["epoch"] == 3
    assert "the epoch with the best validation bound, 3," in pt.status(best, 88.71, 89.2)
    early = pt.read_run(make_run(tmp_path / "c", label="static-vae-short@2", done=3,
                                 evaluation=3, checkpoint="best.npz"))
    assert early["evaluation"] is None


def test_a_short_run_and_its_continuation_share_a_column(tmp_path):
    short = pt.read_run(make_run(tmp_path / "a", evaluation=4))
    full = pt.read_run(make_run(tmp_path / "b", label="burda2015-vae-short@2 changed: --epochs",
                                planned=3280, done=40))
    cols = pt.columns([short, full])
    assert list(cols) == ["VAE v2, test negative ELBO"] and cols["VAE v2, test negative ELBO"]["40"] == 60.0
    other = dict(full, curve={**full["curve"], "1": 5.0})          # not the same run
    assert len(pt.columns([short, other])) == 2


def test_bad_folders_and_readmes_are_refused(tmp_path):
    with pytest.raises(pt.TableError, match="not a run folder: no config.json"):
        pt.read_run(tmp_path)
    with pytest.raises(pt.TableError, match="not made from a recipe"):
        pt.read_run(make_run(tmp_path / "a", label=None))
    with pytest.raises(pt.TableError, match="not a row of the table"):
        pt.read_run(make_run(tmp_path / "b", label="burda2015-iwae50@2"))
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
    assert pt.main(["check", "--record", str(rec), "--readme", str(readme)]) == 1
    assert pt.main(["readme", "--record", str(rec), "--readme", str(readme)]) == 0
    assert pt.main(["check", "--record", str(rec), "--readme", str(readme)]) == 0
    assert "**87.00 ± 0.20**" in readme.read_text() and "(2026-01-02)" in readme.read_text()
    assert pt.main(["record", str(tmp_path), "--record", str(rec)]) == 2
    assert "not a run folder" in capsys.readouterr().err
