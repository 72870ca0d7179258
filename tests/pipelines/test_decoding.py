"""The decoding pipeline on the demo subject: planted embeddings retrieved, reconstructions and captions written, resumed."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from neurodec.cli import app
from neurodec.pipelines import ConfigError
from neurodec.pipelines.decoding import run_decoding
from neurodec.pipelines.decoding_config import decoding_config_from_dict, load_decoding_config
from neurodec.pipelines.discovery_config import is_discovery_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pipelines(demo):
    """The shipped demo configs beside the demo's folder, as `neurodec demo` users have them."""
    folder = demo.root.parent / "pipelines"
    folder.mkdir(exist_ok=True)
    for name in ("encoding_demo.yaml", "decoding_demo.yaml"):
        shutil.copy(REPO / "pipelines" / name, folder)
    return folder


def _raw(pipelines: Path) -> dict:
    raw = yaml.safe_load((pipelines / "decoding_demo.yaml").read_text())
    # Fewer images and steps than the shipped config: the plumbing is the same.
    raw["reconstruction"]["n_images"] = 4
    raw["reconstruction"]["options"]["num_inference_steps"] = 4
    # A feature metric on the reconstructions, with random AlexNet weights (no download): the plumbing only.
    raw["reconstruction"].update(feature_metrics=["alexnet2"], feature_weights="random")
    return raw


@pytest.fixture(scope="module")
def run(pipelines):
    config = decoding_config_from_dict(_raw(pipelines), base_dir=pipelines, source="decoding_demo.yaml")
    return config, run_decoding(config, verbose=False)


@pytest.mark.slow
def test_planted_embeddings_are_retrieved_far_above_chance(run):
    _, result = run
    embeddings = result.metrics[1]["embeddings"]
    # The demo's face and place voxels are driven by layer4: the decoded embedding picks its own image.
    assert embeddings["n_way"] == embeddings["n_test"] == 25
    assert embeddings["top1"]["chance"] == pytest.approx(1 / 25)
    assert embeddings["top1"]["image_retrieval"] >= 10 * embeddings["top1"]["chance"]
    assert embeddings["top1"]["brain_retrieval"] >= 10 * embeddings["top1"]["chance"]
    assert embeddings["two_way_identification"] > 0.9
    # Evaluation hygiene: every metric also on the half of the test images least similar to the training set.
    subsets = pd.DataFrame(embeddings["subsets"])
    assert set(subsets["subset"]) == {"all", "least-similar half"}
    half = subsets[subsets["subset"] == "least-similar half"]
    assert (half["n_samples"] == 12).all() and (half["ci_low"] <= half["estimate"]).all()
    assert (half["mean_similarity"] < subsets.loc[subsets["subset"] == "all", "mean_similarity"].to_numpy()).all()


@pytest.mark.slow
def test_brain_captions_name_the_seen_category(run):
    _, result = run
    table = pd.read_csv(next(f for f in result.outputs[1] if f.name.endswith("_captions.csv")))
    assert len(table) == 25
    # Three categories (face, place, object): chance agreement with the reference is about 1/3.
    assert (table["brain_caption"] == table["reference"]).mean() > 0.6
    scores = result.metrics[1]["captions"]
    assert set(scores) == {"brain", "nearest"} and set(scores["brain"]) == {"BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr"}


@pytest.mark.slow
def test_reconstructions_and_report_are_written(run):
    config, result = run
    files = result.outputs[1]
    assert all(f.is_file() for f in files) and files[-1].suffix == ".html"
    with np.load(next(f for f in files if f.name.endswith("desc-reconstructions_decoding.npz"))) as stored:
        assert stored["images"].shape == (4, 64, 64, 3)
        assert stored["init_images"].shape == (4, 64, 64, 3)
    metrics = json.loads(next(f for f in files if f.name.endswith("_scores.json")).read_text())
    assert metrics["reconstruction"]["n_images"] == 4 and -1 <= metrics["reconstruction"]["pixcorr"] <= 1
    assert 0 <= metrics["reconstruction"]["alexnet2"] <= 1
    report = files[-1].read_text()
    assert "Stable unCLIP" in report and "nearest" in report and "top-1 image retrieval" in report
    assert config.output_root in files[0].parents


@pytest.mark.slow
def test_a_rerun_reuses_every_piece_and_new_options_redo_only_the_images(run, pipelines):
    config, first = run
    again = run_decoding(config, verbose=False)
    assert sorted(again.reused[1]) == ["captions", "embeddings", "latents", "reconstructions"]
    assert again.metrics[1] == json.loads(json.dumps(first.metrics[1]))
    raw = _raw(pipelines)
    raw["reconstruction"]["options"]["strength"] = 0.5
    changed = decoding_config_from_dict(raw, base_dir=pipelines, source="decoding_demo.yaml")
    redone = run_decoding(changed, verbose=False)
    assert sorted(redone.reused[1]) == ["captions", "embeddings", "latents"]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"target": "timm/resnet18/layer9"}, r"'target' must be one of the study's features"),
        ({"decoder": {"alpha": 1.0}}, r"'decoder.alpha' is not an option of LinearDecoder"),
        ({"reconstruction": {"pipeline": "small", "options": {"strenght": 0.5}}}, r"reconstruction.options.strenght"),
        ({"reconstruction": {"pipeline": "small", "options": {"prompts": ["x"]}}}, "set by the pipeline"),
        ({"captions": {"metrics": ["BLEU-5"]}}, r"'captions.metrics' must list some"),
        ({"reconstruction": {"pipeline": "small", "feature_metrics": ["alexnet3"]}}, "reconstruction.feature_metrics"),
        ({"kind": "encoding"}, r"'kind' must be 'decoding'"),
    ],
)
def test_wrong_keys_and_values_are_named(pipelines, change, match):
    raw = {**yaml.safe_load((pipelines / "decoding_demo.yaml").read_text()), **change}
    with pytest.raises(ConfigError, match=match):
        decoding_config_from_dict(raw, base_dir=pipelines, source="d.yaml", check=False)


def test_prompts_need_captions(pipelines):
    raw = yaml.safe_load((pipelines / "decoding_demo.yaml").read_text())
    del raw["captions"]
    with pytest.raises(ConfigError, match=r"reconstruction.prompts.*add a captions section"):
        decoding_config_from_dict(raw, base_dir=pipelines, source="d.yaml", check=False)


def test_neurodec_run_dispatches_a_decoding_config(pipelines):
    assert not is_discovery_config(pipelines / "decoding_demo.yaml")
    raw = yaml.safe_load((pipelines / "decoding_demo.yaml").read_text())
    raw["retrieval"]["n_ways"] = 10
    (pipelines / "broken_decoding.yaml").write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["run", str(pipelines / "broken_decoding.yaml"), "--quiet"])
    assert result.exit_code == 2 and "retrieval" in result.output and "n_ways" in result.output


def test_shipped_nsd_decoding_config_reads():
    config = load_decoding_config(REPO / "pipelines" / "decoding_nsd.yaml", check=False)
    assert config.reconstruction["pipeline"] == "stabilityai/stable-diffusion-2-1-unclip"
    assert config.target.endswith("/output") and "ViT-H-14" in config.target
    assert "swav" in config.reconstruction["feature_metrics"]


def test_a_piece_from_another_neurodec_version_is_reused_with_a_warning(tmp_path):
    import warnings

    import neurodec
    from neurodec.pipelines.decoding import _Pieces

    calls = []

    def compute():
        calls.append(1)
        return {"embeddings": np.arange(6.0).reshape(2, 3)}

    pieces = _Pieces(tmp_path, "01", "layer4")
    first = pieces.arrays("embeddings", "abc", compute)
    path = pieces.files[0]
    with np.load(path) as stored:
        assert str(stored["neurodec_version"]) == neurodec.__version__
        arrays = dict(stored)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pieces.arrays("embeddings", "abc", compute).keys() == {"embeddings"}
    np.savez_compressed(path, **{**arrays, "neurodec_version": np.asarray("0.0.1")})
    with pytest.warns(UserWarning, match=r"written by neurodec 0\.0\.1; this is neurodec"):
        again = pieces.arrays("embeddings", "abc", compute)
    assert calls == [1] and again.keys() == {"embeddings"}
    np.testing.assert_array_equal(again["embeddings"], first["embeddings"])
