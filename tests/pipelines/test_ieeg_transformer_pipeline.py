"""The iEEG transformer pipeline: config checks, probe and baseline scores written, re-running resumes."""

from __future__ import annotations

import json

import pytest
import yaml

from neurodec.pipelines import ConfigError
from neurodec.pipelines.ieeg_transformer import (
    is_ieeg_transformer_config, load_ieeg_transformer_config, run_ieeg_transformer,
)

# 59 two-second music / speech blocks, 16 contacts (8 of them in the speech-responsive regions).
TINY = {
    "name": "tiny",
    "ieeg_transformer": {
        "data": {"simulate": {"duration": 120.0, "block_duration": 2.0, "condition_gain": 1.0, "n_shafts": 4,
                              "contacts_per_shaft": 4, "grid_shape": [0, 0]},
                 "val_fraction": 0.25},
        "model": {"scale": "region", "patch_len": 16, "d_model": 16, "n_heads": 2, "n_layers": 1},
        "pretraining": {"n_epochs": 3, "batch_size": 16, "lr": 2.0e-3},
        "probe": {},
    },
    "outputs": {"root": "out"},
    "device": "cpu",
}


def _write(tmp_path, config, name="ieeg.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


def _with(section, **entries):
    return {**TINY, "ieeg_transformer": {**TINY["ieeg_transformer"], section: entries}}


@pytest.mark.slow  # simulation, BIDS round trip, high gamma and pretraining: ~20 s
def test_pipeline_scores_probe_beside_baseline_and_resumes(tmp_path):
    path = _write(tmp_path, TINY)
    assert is_ieeg_transformer_config(path)
    result = run_ieeg_transformer(path, verbose=False)
    out = tmp_path / "out"
    assert (out / "bids" / "sub-01" / "ses-iemu" / "ieeg").is_dir()
    scores = json.loads((out / "scores.json").read_text())
    assert scores["roc_auc"] == result.roc_auc and scores["baseline_roc_auc"] == result.baseline_roc_auc
    # 59 blocks fit between the task's start (1 s) and the end: one epoch each, half held out, stratified.
    assert (result.n_train, result.n_positive, result.n_negative) == (29, 15, 15)
    # Chance ROC-AUC has sd ~0.107 on 15 + 15 trials: 3 sd above 0.5 is a one-sided p < 0.002.
    assert result.roc_auc > 0.5 + 3 * result.chance_sd
    assert result.baseline_roc_auc > 0.5 + 3 * result.chance_sd
    lines = (out / "pretraining" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3 and scores["epochs_run"] == 3
    # 7 of the 29 training epochs validate the pretraining: its loss before training and after each epoch.
    assert len(scores["pretraining_val_loss"]) == 4 and all("val_loss" in json.loads(line) for line in lines)
    # Re-running reuses the finished pretraining (same weights, nothing retrained): identical scores.
    again = run_ieeg_transformer(path, verbose=False)
    assert again == result
    assert (out / "pretraining" / "metrics.jsonl").read_text().splitlines() == lines


def test_config_errors_name_the_key(tmp_path):
    bad = _with("model", patch_len=16, n_blocks=3)
    with pytest.raises(ConfigError, match=r"'ieeg_transformer.model' has unknown argument\(s\) \['n_blocks'\]"):
        load_ieeg_transformer_config(_write(tmp_path, bad))
    with pytest.raises(ConfigError, match="'ieeg_transformer.model' needs a 'patch_len' entry"):
        load_ieeg_transformer_config(_write(tmp_path, _with("model", d_model=16)))
    with pytest.raises(ConfigError, match="'ieeg_transformer.pretraining' has unknown"):
        load_ieeg_transformer_config(_write(tmp_path, _with("pretraining", checkpoint_dir="x")))
    with pytest.raises(ConfigError, match="'ieeg_transformer.probe' has unknown"):
        load_ieeg_transformer_config(_write(tmp_path, _with("probe", labels="x")))
    with pytest.raises(ConfigError, match="needs 'simulate' or 'bids_ieeg'"):
        load_ieeg_transformer_config(_write(tmp_path, _with("data")))
    with pytest.raises(ConfigError, match="'ieeg_transformer.data.bids_ieeg' needs a 'root' entry"):
        load_ieeg_transformer_config(_write(tmp_path, _with("data", bids_ieeg={"subject": 1})))
    with pytest.raises(ConfigError, match="'ieeg_transformer.data.bids_ieeg.root' is set by the simulation"):
        load_ieeg_transformer_config(_write(tmp_path, _with("data", simulate={}, bids_ieeg={"root": "x"})))
    with pytest.raises(ConfigError, match="'ieeg_transformer.data.bids_ieeg.epochs' is needed"):
        load_ieeg_transformer_config(_write(tmp_path, _with("data", bids_ieeg={"root": "x", "subject": 1})))
    with pytest.raises(ConfigError, match="'ieeg_transformer.data.simulate' has unknown"):
        load_ieeg_transformer_config(_write(tmp_path, _with("data", simulate={"n_grids": 2})))
    with pytest.raises(ConfigError, match=r"'ieeg_transformer.data.test_fraction' must be a number in \(0, 1\)"):
        load_ieeg_transformer_config(_write(tmp_path, _with("data", simulate={}, test_fraction=1.5)))
    with pytest.raises(ConfigError, match=r"'ieeg_transformer.data.val_fraction' must be a number in \[0, 1\)"):
        load_ieeg_transformer_config(_write(tmp_path, _with("data", simulate={}, val_fraction=-0.1)))
    assert not is_ieeg_transformer_config(_write(tmp_path, {"study": "x.yaml"}, "other.yaml"))
    config = load_ieeg_transformer_config(_write(tmp_path, TINY))
    assert config.outputs_root == tmp_path / "out" and config.pretraining["n_epochs"] == 3
    assert config.data["bids_ieeg"]["high_gamma"] and config.data["labels"] == "trial_type"


def test_cli_run_dispatches_ieeg_transformer_configs(tmp_path):
    from typer.testing import CliRunner

    from neurodec.cli import app

    out = CliRunner().invoke(app, ["run", str(_write(tmp_path, _with("model", patch_len=16, n_blocks=3))), "--quiet"])
    # Read as an iEEG transformer study (not as an encoding study): the error names its section.
    assert out.exit_code == 2 and "ieeg_transformer.model" in out.output
