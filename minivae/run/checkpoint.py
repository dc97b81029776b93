"""Checkpoints: the file a training run saves each epoch, written so that nothing is lost.

checkpoint.npz is a zip of .npy arrays and nothing else, read with ``allow_pickle=False``:
    "meta"          uint8 (bytes,): UTF-8 JSON {"format", "version", "run", "progress", "rng",
                    "history"}; ``run`` is what the run folder's config.json holds
    "param.<name>"  one array per model parameter, e.g. "param.encoder.0.W"
    "optim.<name>"  the optimizer's ``state_dict()``, e.g. "optim.t", "optim.m.encoder.0.W";
                    a GAN's two: "optim.discriminator.t", "optim.generator.m.0.W", ...
Loading never unpickles and never runs code: a file that is not such a zip, holds an object
array, comes from a newer format, or does not match the model its config describes is refused
with a CheckpointError that says why. The model is counted from its config and compared with
the arrays before it is built, so a config edited to absurd sizes allocates nothing.

Every value is checked once, where it is loaded, by the rules it was written by: the file is a
regular file of at most MAX_BYTES (files.py); every member is a .npy array of numbers, finite;
the metadata is strict JSON (no NaN or Infinity, which ``save`` could not write back); the run
it records has a valid model config and valid training settings (``check_run``, the same check
as config.json's); the history has one row of finite numbers per finished epoch; the RNG states
are states of numpy's default generator. ``restore_optimizer`` adds what only the optimizer's
kind tells: Adam's second moments are >= 0, the step count an integer >= 0.

The file is replaced atomically (atomic.py): a crash, a kill or a full disk during a save leaves
the previous checkpoint whole. The run folder around a checkpoint is described in folder.py.
"""

import io
import json
import zipfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from minivae.errors import InputError, MinivaeError
from minivae.files import FileError, loads_json, read_bytes
from minivae.kernels.checks import all_finite
from minivae.models import MAX_PARAMETERS, build, check_config, parameter_count
from minivae.optim import Adam
from minivae.run.atomic import atomic_write
from minivae.run.config import TrainConfig

FORMAT, VERSION = "minivae-checkpoint", 1     # bump VERSION when the layout changes
META_KEYS = ("format", "version", "run", "progress", "rng", "history")
# the largest checkpoint minivae writes: MAX_PARAMETERS float64 parameters, and Adam's two
# moments of each, plus the metadata (a long history is a few MB)
MAX_BYTES = 3 * 8 * MAX_PARAMETERS + (64 << 20)
BIT_GENERATOR = "PCG64"                       # np.random.default_rng's; the only one saved


class CheckpointError(MinivaeError):
    """A run folder or checkpoint cannot be read or used; the message says which and why."""


def check_run(run, where):
    """The run description ``run`` = {"model", "data", "train"} checked, with its training
    settings completed from TrainConfig's defaults; CheckpointError naming ``where`` if its
    model config could not be built (counted, not built) or its settings are not valid.
    config.json and every checkpoint's metadata are read through here."""
    ok = (isinstance(run, dict) and isinstance(run.get("model"), dict)
          and isinstance(run["model"].get("model"), str) and isinstance(run.get("data"), str)
          and isinstance(run.get("train"), dict))
    if not ok:
        raise CheckpointError(f"{where}: the run description lacks its model, data or train "
                              "settings; the file is damaged or not from minivae")
    try:
        check_config(run["model"])
    except InputError as e:
        raise CheckpointError(f"{where}: cannot build the model it describes: {e}") from None
    try:
        train = TrainConfig.from_dict(run["train"])
    except (InputError, TypeError) as e:
        raise CheckpointError(f"{where}: its training settings are not valid: {e}") from None
    return {**run, "train": asdict(train)}


def check_version(version, where):
    """Refuse a missing format version, or one newer than this minivae reads."""
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{where}: no valid format version ({version!r})")
    if version > VERSION:
        raise CheckpointError(f"{where} was written by a newer minivae (format version "
                              f"{version}; this one reads up to {VERSION}); upgrade minivae "
                              "to read it")


def save(path, model, optimizer, meta):
    """Write model.params, optimizer.state_dict() (optimizer may be None) and ``meta`` to path.

    ``meta`` holds "run", "progress", "rng" and "history"; format and version are added here.
    """
    meta = {"format": FORMAT, "version": VERSION, **meta}
    text = json.dumps(meta, allow_nan=False)
    arrays = {"meta": np.frombuffer(text.encode("utf-8"), dtype=np.uint8)}
    arrays.update({f"param.{k}": v for k, v in model.params.items()})
    if optimizer is not None:
        arrays.update({f"optim.{k}": v for k, v in optimizer.state_dict().items()})
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write(path, buf.getvalue())


def load(path):
    """-> (params, optim, meta): two dicts of arrays and the JSON metadata, each value checked.

    Whether the arrays fit the model is checked by ``restore_model``/``restore_optimizer``.
    """
    path = Path(path)
    try:
        data = read_bytes(path, MAX_BYTES, "checkpoint")
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except FileError as e:
        raise CheckpointError(str(e)) from None
    bad = f"{path} is not a minivae checkpoint"
    if not data.startswith(b"PK\x03\x04"):
        raise CheckpointError(f"{bad}: it is not a .npz (zip) file (empty, truncated at the "
                              "start, or another kind of file)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for info in z.infolist():          # no compression: sizes are bounded by the file
                if info.compress_type != zipfile.ZIP_STORED or info.file_size > len(data):
                    raise CheckpointError(f"{bad}: member {info.filename!r} is compressed or "
                                          "larger than the file")
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except CheckpointError:
        raise
    except ValueError as e:
        if "pickle" in str(e) or "Object arrays" in str(e):
            raise CheckpointError(f"{bad}: it holds pickled Python objects, which minivae never "
                                  "writes and will not load (they could run code)") from None
        raise CheckpointError(f"{bad}: {e} (truncated or damaged?)") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, MemoryError) as e:
        raise CheckpointError(f"{bad}: {type(e).__name__}: {e} (truncated or damaged?)") \
            from None
    for k, v in arrays.items():                # np.load hands over a member that is not .npy
        if not isinstance(v, np.ndarray):      # as its raw bytes
            raise CheckpointError(f"{bad}: member {k!r} is not a .npy array")
    meta = _read_meta(arrays.pop("meta", None), bad, path)
    params, optim = {}, {}
    for k, v in arrays.items():
        group, _, name = k.partition(".")
        if group not in ("param", "optim") or not name:
            raise CheckpointError(f"{bad}: unexpected array {k!r}")
        if v.dtype.kind not in "fiu":
            raise CheckpointError(f"{bad}: array {k!r} has dtype {v.dtype}, expected numbers")
        if v.dtype.kind == "f" and not all_finite(np.ascontiguousarray(v).reshape(-1)):
            raise CheckpointError(f"{bad}: array {k!r} holds NaN or infinity, which minivae "
                                  "never saves; the file is damaged")
        (params if group == "param" else optim)[name] = v
    return params, optim, meta


def _read_meta(raw, bad, path):
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise CheckpointError(f"{bad}: it has no 'meta' record")
    try:
        meta = loads_json(raw.tobytes(), "its metadata")
    except FileError as e:
        raise CheckpointError(f"{bad}: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{bad}: its metadata has no format tag {FORMAT!r}")
    check_version(meta.get("version"), path)
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise CheckpointError(f"{bad}: its metadata lacks {', '.join(missing)}")
    meta["run"] = check_run(meta["run"], path)
    prog, history, partial = meta["progress"], meta["history"], None
    ok = (isinstance(prog, dict) and _count(prog.get("epoch")) and _count(prog.get("batch"))
          and isinstance(history, list) and len(history) == prog["epoch"]
          and all(_row(row, i + 1) for i, row in enumerate(history))
          and isinstance(meta["rng"], dict))
    if ok and prog["batch"] > 0:                     # a mid-epoch checkpoint: partial sums
        partial = prog.get("partial")
        ok = (isinstance(partial, dict) and isinstance(partial.get("sums"), dict)
              and all(_number(v) for v in partial["sums"].values())
              and _number(partial.get("seconds"))
              and (partial.get("threads") is None or _count(partial["threads"])))
    if not ok:
        raise CheckpointError(f"{bad}: its progress, RNG or history records are malformed")
    for name in ("model", "data"):
        _check_rng_state(meta["rng"].get(name), name, path)
    return meta


def _row(row, epoch):
    """A row of history: {"epoch": its number, name: a number, ...}."""
    return (isinstance(row, dict) and row.get("epoch") == epoch
            and all(_number(v) for v in row.values()))


def _check_rng_state(state, name, path):
    """None, or a state numpy's default bit generator takes (tried on a scratch one)."""
    if state is None:
        return
    try:
        if not isinstance(state, dict) or state.get("bit_generator") != BIT_GENERATOR:
            raise ValueError(f"expected a {BIT_GENERATOR} state")
        np.random.PCG64().state = state
    except (TypeError, ValueError, KeyError, OverflowError) as e:
        raise CheckpointError(f"{path}: its {name} random generator state is not valid: "
                              f"{e}") from None


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _count(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def check_size(params, meta, path):
    """Refuse a checkpoint whose model config implies another number of parameters than the
    arrays it holds: counted by arithmetic, nothing allocated."""
    config = meta["run"]["model"]
    try:
        count = parameter_count(config)
    except InputError as e:
        raise CheckpointError(f"{path}: cannot rebuild the model from its saved config: {e}") \
            from None
    held = sum(a.size for a in params.values())
    if count != held:
        raise CheckpointError(f"{path}: its config describes a {config['model']} model of "
                              f"{count:,} parameters, but the file holds {held:,} numbers; it "
                              "is damaged, edited, or not from minivae")


def restore_model(params, meta, path, rng=None):
    """Build the model that ``meta["run"]["model"]`` describes and copy ``params`` into it.

    ``check_size`` comes first, so a config that asks for more than the file holds is
    refused before anything is allocated.
    """
    check_size(params, meta, path)
    config = meta["run"]["model"]
    try:
        model = build(config, rng=rng)
    except (MinivaeError, TypeError, ValueError, MemoryError) as e:
        raise CheckpointError(f"{path}: cannot rebuild the model from its saved config: {e}") \
            from None
    want = model.params
    if set(params) != set(want):
        raise CheckpointError(f"{path}: its parameters do not match a "
                              f"{meta['run']['model']['model']} model (differing names: "
                              f"{sorted(set(params) ^ set(want))[:6]})")
    for k, p in want.items():
        a = params[k]
        if a.shape != p.shape or a.dtype != p.dtype:
            raise CheckpointError(f"{path}: parameter {k!r} is {a.dtype} {a.shape}, the model "
                                  f"needs {p.dtype} {p.shape}")
        if not np.isfinite(a).all():
            raise CheckpointError(f"{path}: parameter {k!r} holds NaN or infinity")
        p[...] = a                                   # in place: layers keep their arrays
    return model


def restore_optimizer(optimizer, optim, path):
    """Copy the saved optimizer state into ``optimizer`` (built on the restored model), after
    checking what an optimizer of its kind writes: a step count t, an integer >= 0; one array
    per parameter and slot, of the parameter's dtype (finite: ``load`` checked that); for
    Adam, second moments v >= 0 (a negative one would be a square root of a negative number,
    and a NaN step, on the next update: damage, not divergence). A GAN's OptimizerPair
    (optimizers.py): each of its two from the arrays named after it, "discriminator.t", ..."""
    parts = getattr(optimizer, "parts", None)
    if parts is None:
        return _restore_one(optimizer, optim, path, "optimizer")
    stray = sorted(k for k in optim if k.partition(".")[0] not in parts)
    if stray:
        raise CheckpointError(f"{path}: its optimizer state has arrays of no optimizer this "
                              f"model trains with ({stray[:3]}); the file is damaged")
    for name, opt in parts.items():
        _restore_one(opt, {k.partition(".")[2]: v for k, v in optim.items()
                           if k.partition(".")[0] == name}, path, f"{name}'s optimizer")


def _restore_one(optimizer, optim, path, what):
    state = {k: v for k, v in optim.items()}
    t = state.get("t")
    if t is None or t.shape != () or t.dtype.kind not in "iu" or t < 0:
        raise CheckpointError(f"{path}: its {what} state has no valid step count t "
                              f"(got {t!r}); the file is damaged")
    for k, v in state.items():
        slot, _, name = k.partition(".")
        p = optimizer.params.get(name)
        if k != "t" and p is not None and v.dtype != p.dtype:
            raise CheckpointError(f"{path}: {what} state {k!r} is {v.dtype}, the parameter "
                                  f"is {p.dtype}; the file is damaged")
        if isinstance(optimizer, Adam) and slot == "v" and (v < 0).any():
            raise CheckpointError(f"{path}: {what} state {k!r} holds a negative second "
                                  "moment, which Adam never writes; the file is damaged")
    try:
        optimizer.load_state_dict(state)
    except (InputError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: its {what} state does not fit: {e}") from None


def set_rng_state(gen, state, what, path):
    """Put a Generator back where a checkpoint left it (``bit_generator.state`` is JSON)."""
    try:
        if state.get("bit_generator") != type(gen.bit_generator).__name__:
            raise ValueError(f"it is a {state.get('bit_generator')!r} state")
        gen.bit_generator.state = state
    except (AttributeError, TypeError, ValueError, OverflowError) as e:
        raise CheckpointError(f"{path}: cannot restore the {what} random generator: {e}") \
            from None
