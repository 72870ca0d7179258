"""The MEG decoder pipeline: config checks, both decoders' scores written, re-running resumes."""

from __future__ import annotations

import json

import pytest
import yaml

from neurodec.pipelines import ConfigError
from neurodec.pipelines.meg_decoder import is_meg_decoder_config, load_meg_decoder_config, run_meg_decoder

TINY = {
    "name": "tiny",
    "meg_decoder": {
        "data": {"simulate": {"n_train": 40, "n_test": 10, "n_test_repeats": 2, "n_dims": 4, "sfreq": 50.0}},
        "model": {"n_spatial": 8, "n_freqs": 4, "n_hidden": 8, "n_blocks": 1, "n_aggregate": 16},
        "training": {"n_epochs": 2, "batch_size": 16, "patience": None},
    },
    "outputs": {"root": "out"},
    "device": "cpu",
}


def _write(tmp_path, config, name="meg.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow  # the fsaverage head model of the simulation: ~10 s
def test_pipeline_writes_both_scores_and_resumes(tmp_path):
    path = _write(tmp_path, TINY)
    assert is_meg_decoder_config(path)
    result = run_meg_decoder(path, verbose=False)
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert scores["n_test"] == 10 and set(scores) >= {"decoder", "ridge", "chance"}
    assert scores["decoder"] == result.scores["decoder"] and scores["ridge"] == result.scores["ridge"]
    assert scores["chance"] == {"top1": 0.1, "top5": 0.5}
    lines = (tmp_path / "out" / "training" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    # Re-running reuses the finished training (same weights, nothing retrained), the ridge refit is identical.
    again = run_meg_decoder(path, verbose=False)
    assert again.scores == result.scores
    assert (tmp_path / "out" / "training" / "metrics.jsonl").read_text().splitlines() == lines


def test_config_errors_name_the_key(tmp_path):
    bad = {**TINY, "meg_decoder": {**TINY["meg_decoder"], "model": {"n_layers": 3}}}
    with pytest.raises(ConfigError, match=r"'meg_decoder.model' has unknown argument\(s\) \['n_layers'\]"):
        load_meg_decoder_config(_write(tmp_path, bad))
    bad = {**TINY, "meg_decoder": {**TINY["meg_decoder"], "training": {"checkpoint_dir": "x"}}}
    with pytest.raises(ConfigError, match="'meg_decoder.training' has unknown"):
        load_meg_decoder_config(_write(tmp_path, bad))
    bad = {**TINY, "meg_decoder": {**TINY["meg_decoder"], "data": {}}}
    with pytest.raises(ConfigError, match="exactly one of 'simulate' or 'things_meg'"):
        load_meg_decoder_config(_write(tmp_path, bad))
    bad = {**TINY, "meg_decoder": {**TINY["meg_decoder"], "data": {"things_meg": {"subject": 1}, "embeddings": "e.npz"}}}
    with pytest.raises(ConfigError, match="needs a 'root' entry"):
        load_meg_decoder_config(_write(tmp_path, bad))
    assert not is_meg_decoder_config(_write(tmp_path, {"study": "x.yaml"}, "other.yaml"))
    config = load_meg_decoder_config(_write(tmp_path, TINY))
    assert config.outputs_root == tmp_path / "out" and config.training["n_epochs"] == 2


def test_cli_run_dispatches_meg_decoder_configs(tmp_path):
    from typer.testing import CliRunner

    from neurodec.cli import app

    bad = {**TINY, "meg_decoder": {**TINY["meg_decoder"], "model": {"n_layers": 3}}}
    out = CliRunner().invoke(app, ["run", str(_write(tmp_path, bad)), "--quiet"])
    # Read as a MEG decoder study (not as an encoding study): the error names its section.
    assert out.exit_code == 2 and "meg_decoder.model" in out.output
