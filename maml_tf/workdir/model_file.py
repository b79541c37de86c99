"""A run's meta-learned model as one Keras `.keras` file that also carries how the run adapts it.

The file is what `model.save` writes (`keras.models.load_model` reads it back as the network,
once `maml_tf.models` is imported for its layers), plus two entries Keras ignores: the run's
configuration and iteration (`maml_tf/run.json`) and, for Reptile with an inner Adam, the Adam
moments every task starts from (`maml_tf/inner_moments.npz`); a run with learned inner step
sizes (Meta-SGD, LSLR) adds them (`maml_tf/inner_rates.npz`), one with per-step batch-norm
parameters (MAML++'s BNWB) those (`maml_tf/step_params.npz`). `maml_tf.load` reads them all.
"""

import io
import json
import os
import zipfile
from typing import Dict, List, NamedTuple, Optional

import numpy as np

from maml_tf.errors import UserError

MODEL_FILE = "model.keras"  # in a run directory: the model of its newest checkpoint
BEST_MODEL_FILE = "best.keras"  # beside it: the best-validation model
FORMAT = 1
_RUN, _MOMENTS = "maml_tf/run.json", "maml_tf/inner_moments.npz"
_RATES, _STEP_PARAMS = "maml_tf/inner_rates.npz", "maml_tf/step_params.npz"


class Extras(NamedTuple):
    """What a .keras file of maml_tf holds beside the network."""
    config: Dict  # the run's Config as a dict (config.json)
    iteration: int
    moments: Optional[List[np.ndarray]]  # inner Adam second moments, one per trainable weight
    moments_step: float  # Adam steps those moments have seen
    rates: Optional[List[Optional[np.ndarray]]] = None  # learned step sizes, per weight (None: kept)
    step_params: Optional[List[Optional[np.ndarray]]] = None  # steps 1.. batch norm, per weight


def save(path: str, model, config_json: str, iteration: int, moments=None, rates=None,
         step_params=None):
    """Writes `model` with the run's configuration (and inner Adam moments) to `path` atomically:
    a reader never sees half a file, and a crash leaves the previous one."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.partial.keras")
    model.save(tmp)
    with zipfile.ZipFile(tmp, "a") as archive:
        run = {"format": FORMAT, "iteration": int(iteration), "config": json.loads(config_json)}
        if moments is not None:
            buffer = io.BytesIO()
            np.savez(buffer, step=np.asarray(moments.step),
                     **{f"v{i}": np.asarray(v) for i, v in enumerate(moments.v)})
            archive.writestr(_MOMENTS, buffer.getvalue())
            run["inner_moments"] = True
        for key, entry, arrays in (("inner_rates", _RATES, rates),
                                   ("step_params", _STEP_PARAMS, step_params)):
            if arrays is not None:  # one array per trainable weight; absent: none for it
                buffer = io.BytesIO()
                np.savez(buffer, **{f"r{i}": np.asarray(a) for i, a in enumerate(arrays)
                                    if a is not None})
                archive.writestr(entry, buffer.getvalue())
                run[key] = len(arrays)
        archive.writestr(_RUN, json.dumps(run, indent=1))
    os.replace(tmp, path)


def save_run_model(exp, outdir: str, iteration: int, name: str = MODEL_FILE,
                   settings: Optional[str] = None) -> str:
    """The training loop's hook: the current meta-parameters as `outdir/model.keras` (the
    best-validation model as `best.keras`), with `settings` (default: `exp`'s config as JSON)."""
    path = os.path.join(outdir, name)
    rates = exp.inner_rates.arrays() if exp.inner_rates is not None else None
    params = exp.step_vars.arrays() if exp.step_vars is not None else None
    save(path, exp.model, settings or exp.config.to_json(), iteration, exp.moments(), rates, params)
    return path


def read_extras(path: str) -> Extras:
    """The run's configuration, iteration and inner moments stored in a .keras file of maml_tf."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if _RUN not in names:
                raise UserError(f"{path} is a Keras model without maml_tf's adaptation settings; "
                                "give a run directory or a model.keras that maml_tf wrote")
            run = _run_entry(archive.read(_RUN), path)
            moments, step = None, 0.0
            if run.get("inner_moments"):
                with np.load(io.BytesIO(archive.read(_MOMENTS))) as npz:
                    count = len([k for k in npz.files if k.startswith("v")])
                    moments = [npz[f"v{i}"] for i in range(count)]
                    step = float(npz["step"])
            rates = _read_arrays(archive, _RATES, run.get("inner_rates"))
            params = _read_arrays(archive, _STEP_PARAMS, run.get("step_params"))
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError) as err:
        raise UserError(f"cannot read {path}: {err}") from None
    return Extras(run["config"], run["iteration"], moments, step, rates, params)


def _read_arrays(archive, entry: str, count) -> Optional[List[Optional[np.ndarray]]]:
    """Learned step sizes or per-step parameters, one entry per trainable weight (None: none)."""
    if not count:
        return None
    with np.load(io.BytesIO(archive.read(entry))) as npz:
        return [npz[f"r{i}"] if f"r{i}" in npz.files else None for i in range(int(count))]


def _run_entry(data: bytes, path: str) -> Dict:
    """`maml_tf/run.json` as save writes it, else one UserError: a damaged entry (another
    tool's edit, a half-written file) must not surface later as an AttributeError."""
    damaged = f"{path} has a damaged {_RUN}"
    try:
        run = json.loads(data)
    except ValueError as err:  # not JSON, or not UTF-8
        raise UserError(f"{damaged}: {err}") from None
    if not isinstance(run, dict):
        raise UserError(f"{damaged}: a JSON {type(run).__name__}, not an object")
    if "format" not in run:
        raise UserError(f"{damaged}: no format")
    if run["format"] != FORMAT:
        raise UserError(f"{path} has model file format {run.get('format')!r}, this maml_tf reads {FORMAT}")
    if not isinstance(run.get("config"), dict):
        raise UserError(f"{damaged}: its config is {type(run.get('config')).__name__}, not an object")
    iteration = run.get("iteration")
    if isinstance(iteration, bool) or not isinstance(iteration, int) or iteration < 0:
        raise UserError(f"{damaged}: its iteration is {iteration!r}, not a whole number >= 0")
    return run
