"""`minivae export`: the decoder file the explorer page runs, held equal to VAE.decode."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from small_data import every

from minivae import data, export
from minivae.cli import main
from minivae.errors import InputError
from minivae.models import VAE, Autoencoder

REPO = Path(__file__).resolve().parents[1]
_small_sprites = every(16)          # 432 training and 48 test images: a run in a second
DECODER_JS = REPO / "site_src" / "explorer" / "decoder.js"
TINY = ["--data", "sprites", "--epochs", "1", "--hidden", "16", "--latent", "3",
        "--batch-size", "432", "--quiet", "--iwae-k", "0", "--no-figures"]   # one step


def _roundtrip(model, tmp_path, x=None, **kw):
    x = np.random.default_rng(1).random((20, model.x_dim), dtype=np.float32) if x is None else x
    path = tmp_path / "export.json"
    export.write_export(path, export.export_vae(model, x, **kw))
    return export.read_export(path), x


@pytest.mark.parametrize("likelihood, activation, hidden", [
    ("bernoulli", "relu", (32,)), ("bernoulli", "tanh", (24, 16)),
    ("gaussian", "leaky_relu", (16,)), ("gaussian-learned", "softplus", (16,)),
    ("bernoulli", "sigmoid", (8,))])
def test_decode_from_the_file_equals_the_models(tmp_path, likelihood, activation, hidden):
    model = VAE(16, hidden=hidden, z_dim=3, likelihood=likelihood, activation=activation,
                rng=0)
    for layer in model.decoder.layers:                  # weights far from their init
        for p in layer.params.values():
            p += np.random.default_rng(2).normal(0, 0.5, p.shape).astype(p.dtype)
    doc, _ = _roundtrip(model, tmp_path)
    z = np.random.default_rng(3).normal(0, 2, (50, 3)).astype(np.float32)
    got, want = export.decode(doc, z), model.decode(z)
    assert got.shape == want.shape == (50, 16)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_a_wrong_decoder_is_caught(tmp_path):
    """The comparison above can fail: a file whose last bias moved decodes differently."""
    model = VAE(16, hidden=(8,), z_dim=2, rng=0)
    doc, _ = _roundtrip(model, tmp_path)
    doc["layers"][-1]["b"][0] += 1e-3
    z = np.zeros((1, 2), np.float32)
    assert np.abs(export.decode(doc, z) - model.decode(z)).max() > 1e-5


def test_the_file_holds_exact_weights_codes_and_labels(tmp_path):
    model = VAE(16, hidden=(8,), z_dim=2, rng=0)
    y = np.arange(20) % 3
    factors = np.stack([y, y * 0.5], axis=1)
    doc, x = _roundtrip(model, tmp_path, labels=y, label_names=["a", "b", "c"], factors=factors,
                        factor_names=("f", "g"), image_shape=(4, 4), about={"data": "toy"})
    W = model.decoder.layers[0].params["W"]
    assert np.array_equal(doc["layers"][0]["W"], W) and doc["layers"][0]["W"].dtype == W.dtype
    assert [la["activation"] for la in doc["layers"]] == ["relu", "identity"]
    mu, _ = model.encode(x)
    assert np.array_equal(doc["codes"]["mu"], mu)
    assert doc["codes"]["labels"] == y.tolist() and doc["codes"]["label_names"] == ["a", "b", "c"]
    assert doc["codes"]["factors"] == [y.tolist(), (y * 0.5).tolist()]
    var = mu.astype(np.float64).var(axis=0)
    assert doc["codes"]["dims_by_var"][0] == int(np.argmax(var))
    assert doc["image_shape"] == [4, 4] and doc["data"] == "toy" and doc["output"] == "sigmoid"


def test_only_dense_vaes_are_exported():
    x = np.zeros((2, 16), np.float32)
    with pytest.raises(InputError, match="expected a VAE"):
        export.export_vae(Autoencoder(16, hidden=(8,), z_dim=2, rng=0), x)
    with pytest.raises(InputError, match="convolutional"):
        export.export_vae(VAE(64, hidden=(), z_dim=2, arch="conv", channels=(2,), rng=0),
                          np.zeros((2, 64), np.float32))
    with pytest.raises(InputError, match="image_shape"):
        export.export_vae(VAE(16, hidden=(8,), z_dim=2, rng=0), x, image_shape=(3, 3))


def test_a_file_that_is_not_an_export_is_refused(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"format": "something else"}')
    with pytest.raises(InputError, match="minivae export"):
        export.read_export(bad)
    bad.write_text("{not json")
    with pytest.raises(InputError, match="cannot read"):
        export.read_export(bad)
    with pytest.raises(InputError, match="float32"):
        export.unpack({"shape": [3], "float32": "!!"})


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "vae"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    return out


def test_the_command_writes_the_decoder_and_test_codes(run_dir, capsys):
    from minivae.run import folder
    assert main(["export", str(run_dir), "--n", "30", "--seed", "4"]) == 0
    assert "codes of 30 test examples" in capsys.readouterr().out
    doc = export.read_export(run_dir / "export.json")
    model, _ = folder.load_model(run_dir)
    test = data.load("sprites", "test")
    keep = export.pick_examples(len(test), 30, 4)
    assert len(keep) == len(set(keep.tolist())) == 30
    mu, _ = model.encode(np.ascontiguousarray(test.x[keep]))
    assert np.array_equal(doc["codes"]["mu"], mu)
    assert doc["codes"]["labels"] == test.y[keep].tolist()
    assert doc["codes"]["label_names"] == ["square", "ellipse", "heart"]
    assert doc["codes"]["factor_names"][0] == "shape" and doc["image_shape"] == [32, 32]
    z = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
    np.testing.assert_allclose(export.decode(doc, z), model.decode(z), atol=1e-5, rtol=0)


def test_the_command_refuses_in_one_line(run_dir, tmp_path, capsys):
    assert main(["export", str(run_dir), "--out", str(tmp_path / "x.txt")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "expected a file name ending in .json" in err[0]
    assert main(["export", str(tmp_path / "nothing")]) == 1
    assert "no run folder" in capsys.readouterr().err
    assert main(["export", str(run_dir), "--n", "0"]) == 2


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_pages_javascript_decoder_equals_numpys(run_dir, tmp_path):
    """decoder.js (the explorer's) run by node on fixed z, against minivae's decoder.
    The site's browser test checks the same in Chromium, on the built page."""
    from minivae.run import folder
    path = tmp_path / "e.json"
    assert main(["export", str(run_dir), "--out", str(path), "--n", "5"]) == 0
    z = [[0.0, 0.0, 0.0], [1.5, -2.0, 0.3], [-3.0, 2.5, 1.0]]
    script = (f"const {{Decoder}} = require({json.dumps(str(DECODER_JS))});"
              f"const doc = JSON.parse(require('fs').readFileSync({json.dumps(str(path))}));"
              f"const d = new Decoder(doc);"
              f"console.log(JSON.stringify({json.dumps(z)}.map((z) => Array.from(d.decode(z)))));")
    got = np.array(json.loads(subprocess.run(["node", "-e", script], capture_output=True,
                                             text=True, check=True, timeout=60).stdout))
    model, _ = folder.load_model(run_dir)
    want = model.decode(np.array(z, np.float32))
    assert got.shape == want.shape == (3, 1024)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got, export.decode(export.read_export(path), z), atol=1e-12)


def test_the_explorer_page_gives_the_commands_the_site_build_runs():
    """The full-size models of the explorer are those its page tells users to train."""
    import importlib.util
    import re
    import sys
    spec = importlib.util.spec_from_file_location("minivae_site_build",
                                                  REPO / "site_src" / "build.py")
    build = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = build
    spec.loader.exec_module(build)
    page = (REPO / "site_src" / "pages" / "explorer.md").read_text(encoding="utf-8")
    given = {m.group(2): m.group(1).split()
             for m in re.finditer(r"^minivae train (.+?) --out runs/(\S+)$", page, re.MULTILINE)}
    assert set(given) == set(build.EXPLORERS)
    assert build.COMMON[:2] == ["--seed", "0"]          # the rest: no evaluation, no figures
    for name, spec in build.EXPLORERS.items():
        assert given[name] == spec["full"] + build.COMMON[:2], name
        assert f"minivae export runs/{name} --out {name}.json" in page
