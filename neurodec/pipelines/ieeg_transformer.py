"""iEEG transformer pipeline: masked latent pretraining, then a probe scored beside the linear baseline.

Example (``pipelines/ieeg_transformer_demo.yaml``)::

    name: ieeg-transformer-demo
    ieeg_transformer:                  # this key makes the file an iEEG transformer study
      data:
        simulate: {duration: 240.0, block_duration: 2.0, condition_gain: 1.0}   # simulate_ieeg arguments
        # or a BIDS iEEG dataset: bids_ieeg: {root: /data/ds003688, subject: 1, session: iemu}
        bids_ieeg: {high_gamma: true, sfreq: 64.0,          # load_bids_ieeg arguments (epochs, reference...)
                    epochs: {tmin: 0.0, tmax: 1.0, event_names: [speech, music]}}
        labels: trial_type             # trials column holding the two classes
        positive: speech
        test_fraction: 0.5             # held-out trials (stratified, seeded)
        val_fraction: 0.2              # of the training trials: pretraining's validation (early stopping)
      model: {scale: region, patch_len: 16, d_model: 32, n_layers: 1}   # IEEGTransformer.from_responses
      pretraining: {n_epochs: 10, batch_size: 16, lr: 2.0e-3, patience: 3}   # pretrain_masked_latent arguments
      probe: {finetune: false}                                          # evaluate_ieeg_probe arguments
    outputs: {root: derivatives/ieeg_transformer_demo}
    device: auto
    random_state: 0

With ``simulate``, the recording is written as BIDS (ds003688's layout) under
``<outputs>/bids`` and read back with :func:`~neurodec.data.load_bids_ieeg`;
its ``bids_ieeg`` section then takes loader arguments only (no ``root`` or
``subject``), defaulting to :data:`SIMULATION_LOADING`. Writes ``scores.json``
(probe and linear-baseline ROC-AUC, the chance sd, pretraining losses) and
``pretraining/`` (checkpoints and ``metrics.jsonl``) under the outputs root.
Re-running resumes the pretraining from its checkpoint (a finished run is not
retrained). Relative paths are resolved against the config file's folder.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from .config import (
    _check_arguments, _device, _fail, _integer, _mapping, _read_yaml, _required, _string, path_resolver,
)

__all__ = [
    "IEEGTransformerConfig", "SIMULATION_LOADING", "is_ieeg_transformer_config", "load_ieeg_transformer_config",
    "run_ieeg_transformer",
]

_TOP = {"name", "ieeg_transformer", "outputs", "device", "random_state"}
#: Loading of a simulated recording: common average, line noise removed, high-gamma envelope at 64 Hz,
#: 1 s epochs from the onset of every speech and music block.
SIMULATION_LOADING: dict[str, Any] = {
    "reference": "average", "notch": True, "high_gamma": True, "sfreq": 64.0,
    "epochs": {"tmin": 0.0, "tmax": 1.0, "event_names": ["speech", "music"]},
}
#: Arguments the pipeline sets itself.
_PRETRAIN_RESERVED = {"encoder", "data", "val_data", "checkpoint_dir", "resume", "random_state", "device", "verbose"}
_PROBE_RESERVED = {"encoder", "responses", "labels", "positive", "random_state", "device", "verbose"}
_MODEL_RESERVED = {"responses", "layout"}


@dataclasses.dataclass(frozen=True)
class IEEGTransformerConfig:
    """A checked iEEG transformer study: see the module docstring for the file format."""

    name: str
    data: dict[str, Any]
    model: dict[str, Any]
    pretraining: dict[str, Any]
    probe: dict[str, Any]
    outputs_root: Path
    device: str = "auto"
    random_state: int = 0


def is_ieeg_transformer_config(path: str | Path) -> bool:
    """Whether a pipeline file is an iEEG transformer study (it has an ``ieeg_transformer`` section)."""
    raw = _read_yaml(Path(path))
    return isinstance(raw, dict) and "ieeg_transformer" in raw


def _model_arguments() -> set[str]:
    import inspect

    from ..neural.ieeg_transformer import IEEGTransformer

    names = set(inspect.signature(IEEGTransformer.from_responses).parameters) - {"cls", "kwargs"}
    return names | set(inspect.signature(IEEGTransformer).parameters)


def _check_data(data: dict[str, Any], source: str, resolve: Any) -> dict[str, Any]:
    from ..data.bids_ieeg import load_bids_ieeg
    from ..data.ieeg_simulation import simulate_ieeg

    key = "ieeg_transformer.data"
    loading = _mapping(data.get("bids_ieeg"), f"{key}.bids_ieeg", source)
    _check_arguments(loading, load_bids_ieeg, f"{key}.bids_ieeg", source, {"verbose"})
    if "simulate" in data:
        _check_arguments(_mapping(data["simulate"], f"{key}.simulate", source), simulate_ieeg, f"{key}.simulate",
                         source)
        for name in ("root", "subject"):
            if name in loading:
                raise _fail(source, f"{key}.bids_ieeg.{name}", "is set by the simulation (written under the outputs).")
        loading = {**SIMULATION_LOADING, **loading}
    else:
        if "bids_ieeg" not in data:
            raise _fail(source, key, "needs 'simulate' or 'bids_ieeg' (a root and loader arguments).")
        loading["root"] = resolve(_string(_required(loading, "root", f"{key}.bids_ieeg", source),
                                          f"{key}.bids_ieeg.root", source))
        _required(loading, "subject", f"{key}.bids_ieeg", source)
    if not isinstance(loading.get("epochs"), dict):
        raise _fail(source, f"{key}.bids_ieeg.epochs", "is needed: the probe classifies epochs around events.")
    fractions = {}
    for name, default, low in (("test_fraction", 0.5, 0.0), ("val_fraction", 0.0, None)):
        value = data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low is None or low < value) \
                or not 0 <= value < 1:
            interval = "(0, 1)" if low is not None else "[0, 1)"
            raise _fail(source, f"{key}.{name}", f"must be a number in {interval}. Got {value!r}.")
        fractions[name] = float(value)
    return {**data, "bids_ieeg": loading, **fractions,
            "labels": _string(data.get("labels", "trial_type"), f"{key}.labels", source),
            "positive": data.get("positive", "speech")}


def load_ieeg_transformer_config(path: str | Path) -> IEEGTransformerConfig:
    """Read and check an iEEG transformer study config; errors name the file and the key.

    Parameters
    ----------
    path : path-like
        The YAML file.

    Returns
    -------
    IEEGTransformerConfig
    """
    from ..neural.ieeg_pretraining import pretrain_masked_latent
    from ..neural.ieeg_probe import evaluate_ieeg_probe

    path = Path(path)
    source, resolve = str(path), path_resolver(path.parent)
    raw = _mapping(_read_yaml(path), "top", source, _TOP)
    section = _mapping(_required(raw, "ieeg_transformer", "top level", source), "ieeg_transformer", source,
                       {"data", "model", "pretraining", "probe"})
    data = _mapping(_required(section, "data", "ieeg_transformer", source), "ieeg_transformer.data", source,
                    {"simulate", "bids_ieeg", "labels", "positive", "test_fraction", "val_fraction"})
    model = _mapping(section.get("model"), "ieeg_transformer.model", source)
    allowed = _model_arguments() - _MODEL_RESERVED
    if set(model) - allowed:
        raise _fail(source, "ieeg_transformer.model",
                    f"has unknown argument(s) {sorted(set(model) - allowed)}; allowed: {sorted(allowed)}.")
    _required(model, "patch_len", "ieeg_transformer.model", source)
    pretraining = _check_arguments(_mapping(section.get("pretraining"), "ieeg_transformer.pretraining", source),
                                   pretrain_masked_latent, "ieeg_transformer.pretraining", source, _PRETRAIN_RESERVED)
    probe = _check_arguments(_mapping(section.get("probe"), "ieeg_transformer.probe", source), evaluate_ieeg_probe,
                             "ieeg_transformer.probe", source, _PROBE_RESERVED)
    outputs = _mapping(_required(raw, "outputs", "top level", source), "outputs", source, {"root"})
    return IEEGTransformerConfig(
        name=_string(raw.get("name", path.stem), "name", source), data=_check_data(data, source, resolve),
        model=model, pretraining=pretraining, probe=probe,
        outputs_root=resolve(_string(_required(outputs, "root", "outputs", source), "outputs.root", source)),
        device=_device(raw.get("device", "auto"), source),
        random_state=_integer(raw.get("random_state", 0), "random_state", source),
    )


def _load_data(config: IEEGTransformerConfig, verbose: bool | int) -> Any:
    """The epochs as Responses, with a seeded test split stratified by the labels."""
    from sklearn.model_selection import train_test_split

    from ..data.bids_ieeg import load_bids_ieeg

    loading = dict(config.data["bids_ieeg"])
    if "simulate" in config.data:
        from ..data.bids_ieeg_writer import write_bids_ieeg
        from ..data.ieeg_simulation import simulate_ieeg

        simulation = simulate_ieeg(**{"random_state": config.random_state, **config.data["simulate"]})
        # Written again on every run: the same seed gives the same files, and a changed config cannot go stale.
        write_bids_ieeg(config.outputs_root / "bids", simulation, subject="01")
        loading.update(root=config.outputs_root / "bids", subject="01")
    responses = load_bids_ieeg(**loading, verbose=verbose)
    labels = config.data["labels"]
    if labels not in responses.trials:
        raise ValueError(f"The loaded trials have no column {labels!r} (ieeg_transformer.data.labels); "
                         f"columns: {sorted(responses.trials)}.")
    index = np.arange(responses.n_trials)
    _, test = train_test_split(index, test_size=config.data["test_fraction"], random_state=config.random_state,
                               stratify=responses.trials[labels].to_numpy())
    trials = responses.trials.assign(split=np.where(np.isin(index, test), "test", "train"))
    return dataclasses.replace(responses, trials=trials)


def run_ieeg_transformer(config: IEEGTransformerConfig | str | Path, *, verbose: bool | int = True) -> Any:
    """Run an iEEG transformer study: pretrain the encoder, score its probe beside the linear baseline.

    Parameters
    ----------
    config : IEEGTransformerConfig or path-like
    verbose : bool or int

    Returns
    -------
    neurodec.neural.ProbeResult
    """
    from .._io import write_json_atomic
    from ..neural import IEEGTransformer, evaluate_ieeg_probe, pretrain_masked_latent, seed_everything

    if not isinstance(config, IEEGTransformerConfig):
        config = load_ieeg_transformer_config(config)
    responses = _load_data(config, verbose)
    seed_everything(config.random_state)
    model = dict(config.model)
    encoder = IEEGTransformer.from_responses(responses, model.pop("scale", "channel"), **model)
    # The test trials are the probe's; pretraining never sees them (its early stopping neither).
    train = responses.split("train").data
    val = None
    if config.data["val_fraction"] > 0:
        order = np.random.default_rng(config.random_state).permutation(len(train))
        n_val = max(1, int(round(config.data["val_fraction"] * len(train))))
        train, val = train[np.sort(order[n_val:])], train[np.sort(order[:n_val])]
    pretrained = pretrain_masked_latent(
        encoder, train, val_data=val, checkpoint_dir=config.outputs_root / "pretraining", resume=True,
        random_state=config.random_state, device=config.device, verbose=verbose, **config.pretraining,
    )
    result = evaluate_ieeg_probe(encoder, responses, config.data["labels"], positive=config.data["positive"],
                                 random_state=config.random_state, device=config.device, verbose=verbose,
                                 **config.probe)
    write_json_atomic(config.outputs_root / "scores.json", {
        "name": config.name, **dataclasses.asdict(result), "n_test": result.n_positive + result.n_negative,
        "pretraining_train_loss": pretrained.train_loss.tolist(), "epochs_run": len(pretrained.training.history),
        "pretraining_val_loss": None if pretrained.val_loss is None else pretrained.val_loss.tolist(),
        "best_epoch": pretrained.training.best_epoch,
        "model": config.model, "pretraining": config.pretraining, "probe": config.probe,
        "random_state": config.random_state,
    })
    return result
