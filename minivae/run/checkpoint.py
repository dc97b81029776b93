"""Checkpoints: the file a training run saves each epoch, written so that nothing is lost.

checkpoint.npz is a zip of .npy arrays and nothing else, read with ``allow_pickle=False``:
    "meta"          uint8 (bytes,): UTF-8 JSON {"format", "version", "run", "progress", "rng",
                    "history"}; ``run`` is what the run folder's config.json holds
    "param.<name>"  one array per model parameter, e.g. "param.encoder.0.W"
    "optim.<name>"  the optimizer's ``state_dict()``, e.g. "optim.t", "optim.m.encoder.0.W"
Loading never unpickles and never runs code: a file that is not such a zip, holds an object
array, comes from a newer format, or does not match the model its config describes is refused
with a CheckpointError that says why. The model is counted from its config and compared with
the arrays before it is built, so a config edited to absurd sizes allocates nothing.

The file is replaced atomically (atomic.py): a crash, a kill or a full disk during a save leaves
the previous checkpoint whole. The run folder around a checkpoint is described in folder.py.
"""

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from minivae.errors import InputError, MinivaeError
from minivae.models import build, parameter_count
from minivae.run.atomic import atomic_write

FORMAT, VERSION = "minivae-checkpoint", 1     # bump VERSION when the layout changes
META_KEYS = ("format", "version", "run", "progress", "rng", "history")


class CheckpointError(MinivaeError):
    """A run folder or checkpoint cannot be read or used; the message says which and why."""


def check_run(run, where):
    """Refuse a run description without its model, data and train entries."""
    ok = (isinstance(run, dict) and isinstance(run.get("model"), dict)
          and isinstance(run["model"].get("model"), str) and isinstance(run.get("data"), str)
          and isinstance(run.get("train"), dict))
    if not ok:
        raise CheckpointError(f"{where}: the run description lacks its model, data or train "
                              "settings; the file is damaged or not from minivae")


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
    """-> (params, optim, meta): two dicts of arrays and the JSON metadata, checked for form.

    Whether the arrays fit the model is checked by ``restore_model``/``restore_optimizer``.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e}") from e
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
    meta = _read_meta(arrays.pop("meta", None), bad, path)
    params, optim = {}, {}
    for k, v in arrays.items():
        group, _, name = k.partition(".")
        if group not in ("param", "optim") or not name:
            raise CheckpointError(f"{bad}: unexpected array {k!r}")
        if v.dtype.kind not in "fiu":
            raise CheckpointError(f"{bad}: array {k!r} has dtype {v.dtype}, expected numbers")
        (params if group == "param" else optim)[name] = v
    return params, optim, meta


def _read_meta(raw, bad, path):
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise CheckpointError(f"{bad}: it has no 'meta' record")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"{bad}: its metadata is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{bad}: its metadata has no format tag {FORMAT!r}")
    check_version(meta.get("version"), path)
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise CheckpointError(f"{bad}: its metadata lacks {', '.join(missing)}")
    check_run(meta["run"], path)
    prog, history, partial = meta["progress"], meta["history"], None
    ok = (isinstance(prog, dict) and _count(prog.get("epoch")) and _count(prog.get("batch"))
          and isinstance(history, list) and len(history) == prog["epoch"]
          and all(isinstance(row, dict) for row in history) and isinstance(meta["rng"], dict))
    if ok and prog["batch"] > 0:                     # a mid-epoch checkpoint: partial sums
        partial = prog.get("partial")
        ok = (isinstance(partial, dict) and isinstance(partial.get("sums"), dict)
              and all(_number(v) for v in partial["sums"].values())
              and _number(partial.get("seconds")))
    if not ok:
        raise CheckpointError(f"{bad}: its progress, RNG or history records are malformed")
    return meta


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
    """Copy the saved optimizer state into ``optimizer`` (built on the restored model)."""
    state = {k: v for k, v in optim.items()}
    try:
        optimizer.load_state_dict(state)
    except (InputError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: its optimizer state does not fit: {e}") from None


def set_rng_state(gen, state, what, path):
    """Put a Generator back where a checkpoint left it (``bit_generator.state`` is JSON)."""
    try:
        if state.get("bit_generator") != type(gen.bit_generator).__name__:
            raise ValueError(f"it is a {state.get('bit_generator')!r} state")
        gen.bit_generator.state = state
    except (AttributeError, TypeError, ValueError, OverflowError) as e:
        raise CheckpointError(f"{path}: cannot restore the {what} random generator: {e}") \
            from None
