"""MEG decoder pipeline: a config names the data, the network and its training; the ridge baseline runs beside it.

Example (``pipelines/meg_decoder_demo.yaml``)::

    name: meg-decoder-demo
    meg_decoder:                       # this key makes the file a MEG decoder study
      data:
        simulate: {n_train: 400, n_test: 50, sfreq: 100.0}   # simulate_meg_epochs arguments
        # or a recording and the image embeddings of its stimuli:
        # things_meg: {root: /data/THINGS-MEG, subject: 1, preprocessing: benchetrit}
        # embeddings: things_clip.npz  # arrays 'stimulus_ids' and 'embeddings'
      model: {n_spatial: 32, n_hidden: 64, n_blocks: 3}      # MEGDecoder arguments
      training: {n_epochs: 20, batch_size: 64, lr: 3.0e-3}    # evaluate_meg_decoder arguments
    outputs: {root: derivatives/meg_decoder_demo}
    device: auto
    random_state: 0

Writes ``scores.json`` (decoder and ridge top-1/top-5, chance), ``predictions.npz``
and ``training/`` (checkpoints and ``metrics.jsonl``) under the outputs root.
Re-running resumes the training from its checkpoint (a finished run is not
retrained). Relative paths are resolved against the config file's folder.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from .config import (
    ConfigError, _check_arguments, _device, _fail, _integer, _mapping, _read_yaml, _required, _string, path_resolver,
)

__all__ = ["MEGDecoderConfig", "is_meg_decoder_config", "load_meg_decoder_config", "run_meg_decoder"]

_TOP = {"name", "meg_decoder", "outputs", "device", "random_state"}
#: evaluate_meg_decoder arguments the pipeline sets itself.
_RESERVED = {"responses", "embeddings", "model_params", "checkpoint_dir", "resume", "random_state", "device", "verbose"}


@dataclasses.dataclass(frozen=True)
class MEGDecoderConfig:
    """A checked MEG decoder study: see the module docstring for the file format."""

    name: str
    data: dict[str, Any]
    model: dict[str, Any]
    training: dict[str, Any]
    outputs_root: Path
    device: str = "auto"
    random_state: int = 0


def is_meg_decoder_config(path: str | Path) -> bool:
    """Whether a pipeline file is a MEG decoder study (it has a ``meg_decoder`` section)."""
    raw = _read_yaml(Path(path))
    return isinstance(raw, dict) and "meg_decoder" in raw


def load_meg_decoder_config(path: str | Path) -> MEGDecoderConfig:
    """Read and check a MEG decoder study config; errors name the file and the key.

    Parameters
    ----------
    path : path-like
        The YAML file.

    Returns
    -------
    MEGDecoderConfig
    """
    from ..data.meg_simulation import simulate_meg_epochs
    from ..data.things_meg import load_things_meg
    from ..neural.meg_decoder import MEGDecoder
    from ..neural.meg_evaluation import evaluate_meg_decoder

    path = Path(path)
    source, resolve = str(path), path_resolver(path.parent)
    raw = _mapping(_read_yaml(path), "top", source, _TOP)
    section = _mapping(_required(raw, "meg_decoder", "top level", source), "meg_decoder", source,
                       {"data", "model", "training"})
    data = _mapping(_required(section, "data", "meg_decoder", source), "meg_decoder.data", source,
                    {"simulate", "things_meg", "embeddings"})
    if ("simulate" in data) == ("things_meg" in data):
        raise _fail(source, "meg_decoder.data", "needs exactly one of 'simulate' or 'things_meg'.")
    if "simulate" in data:
        _check_arguments(_mapping(data["simulate"], "meg_decoder.data.simulate", source), simulate_meg_epochs,
                         "meg_decoder.data.simulate", source, {"embeddings"})
        if "embeddings" in data:
            raise _fail(source, "meg_decoder.data.embeddings", "is for recordings; a simulation plants its own.")
    else:
        things = _mapping(data["things_meg"], "meg_decoder.data.things_meg", source)
        _check_arguments(things, load_things_meg, "meg_decoder.data.things_meg", source, {"verbose"})
        things["root"] = resolve(_required(things, "root", "meg_decoder.data.things_meg", source))
        data["things_meg"] = things
        data["embeddings"] = resolve(_string(_required(data, "embeddings", "meg_decoder.data", source),
                                             "meg_decoder.data.embeddings", source))
    model = _check_arguments(_mapping(section.get("model"), "meg_decoder.model", source), MEGDecoder,
                             "meg_decoder.model", source, {"positions", "n_times", "n_outputs", "n_subjects"})
    training = _check_arguments(_mapping(section.get("training"), "meg_decoder.training", source),
                                evaluate_meg_decoder, "meg_decoder.training", source, _RESERVED)
    outputs = _mapping(_required(raw, "outputs", "top level", source), "outputs", source, {"root"})
    return MEGDecoderConfig(
        name=_string(raw.get("name", path.stem), "name", source), data=data, model=model, training=training,
        outputs_root=resolve(_string(_required(outputs, "root", "outputs", source), "outputs.root", source)),
        device=_device(raw.get("device", "auto"), source),
        random_state=_integer(raw.get("random_state", 0), "random_state", source),
    )


def _load_data(config: MEGDecoderConfig, verbose: bool | int) -> tuple[Any, Any]:
    from ..data import Features

    if "simulate" in config.data:
        from ..data.meg_simulation import simulate_meg_epochs

        options = {"random_state": config.random_state, **config.data["simulate"]}
        responses, embeddings, _ = simulate_meg_epochs(**options)
        return responses, Features(embeddings, np.arange(len(embeddings)), name="simulated-embeddings")
    from ..data.things_meg import load_things_meg

    responses = load_things_meg(**config.data["things_meg"], verbose=verbose)
    path = config.data["embeddings"]
    with np.load(path, allow_pickle=False) as saved:
        missing = {"stimulus_ids", "embeddings"} - set(saved.files)
        if missing:
            raise ConfigError(f"{path}: the embeddings file lacks the array(s) {sorted(missing)}.")
        return responses, Features(saved["embeddings"], saved["stimulus_ids"], name=Path(path).stem)


def run_meg_decoder(config: MEGDecoderConfig | str | Path, *, verbose: bool | int = True) -> Any:
    """Run a MEG decoder study: train the network, fit the ridge baseline, write both scores.

    Parameters
    ----------
    config : MEGDecoderConfig or path-like
    verbose : bool or int

    Returns
    -------
    neurodec.neural.MEGDecodingResult
    """
    from .._io import atomic_path, write_json_atomic
    from ..neural.meg_evaluation import evaluate_meg_decoder

    if not isinstance(config, MEGDecoderConfig):
        config = load_meg_decoder_config(config)
    responses, embeddings = _load_data(config, verbose)
    root = config.outputs_root
    result = evaluate_meg_decoder(
        responses, embeddings, model_params=config.model, checkpoint_dir=root / "training", resume=True,
        random_state=config.random_state, device=config.device, verbose=verbose, **config.training,
    )
    write_json_atomic(root / "scores.json", {
        "name": config.name, "n_test": result.n_test, **result.scores,
        "best_epoch": result.training.best_epoch, "epochs_run": len(result.training.history),
        "model": config.model, "training": config.training, "random_state": config.random_state,
    })
    with atomic_path(root / "predictions.npz") as tmp:
        np.savez(tmp, test_ids=np.asarray(result.test_ids).astype(str), decoder=result.decoder_predictions, ridge=result.ridge_predictions,
                 true=result.true_embeddings)
    return result
