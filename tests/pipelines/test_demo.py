"""The main job: the demo recovers the planted encoding model; re-runs reuse work."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from demo_size import DEMO_SIZE as SMALL
from float32_tolerance import float32_atol, float32_rtol
from neurodec.backbones import extraction
from neurodec.encoding import EncodingModel
from neurodec.pipelines import load_config, run_encoding_study
from neurodec.pipelines.demo import run_demo

REPO = Path(__file__).resolve().parents[2]


def test_demo_recovers_the_planted_model(demo):
    summary = demo.summary.set_index("area")
    # Each simulated area's best layer is the layer that drives it.
    for area in ("early", "face", "place"):
        assert summary.loc[area, "recovered_layer"] == summary.loc[area, "planted_layer"], summary
        # Scores approach the noise ceiling where the model is right.
        assert summary.loc[area, "r2_normalized"] > 0.7, summary
    # Voxels with no signal are not predicted.
    assert abs(summary.loc["none", "r2"]) < 0.05, summary


def test_demo_writes_a_report_and_maps(demo):
    assert demo.report is not None and demo.report.is_file()
    html = demo.report.read_text()
    assert "timm/resnet18/layer4" in html
    written = next(iter(demo.study.outputs.values()))
    assert any(p.name.endswith(".nii.gz") for p in written["maps"])


def test_demo_subject_has_a_t1_that_the_report_draws_maps_over(demo):
    import nibabel as nib

    from neurodec.data.specs import check_root, load_spec
    from neurodec.viz import find_underlay

    root = demo.root / "nsd"
    t1_path = load_spec("nsd").path("anat_t1", root, subject=1, space="func1pt8mm")
    assert t1_path.is_file()
    report = check_root("nsd", root, keys=["anat_t1", "betas_volume_hdf5"])
    assert not report.malformed and report.present["anat_t1"] == [t1_path]
    first = next(iter(next(iter(demo.study.scores.values())).values()))
    t1 = nib.load(t1_path)
    assert t1.shape == tuple(first.info["volume_shape"])
    np.testing.assert_allclose(t1.affine, first.info["affine"])
    # Bright inside the brain (white matter), dark at the volume's corners (outside it).
    data = t1.get_fdata()
    assert data[tuple(s // 2 for s in data.shape)] > 0.8 * data.max() and data[0, 0, 0] < 0.2 * data.max()
    # The report's volume maps resolve that file as their underlay.
    path, what = find_underlay(first.info, first.subject, first.space)
    assert path == t1_path and "T1" in what


def test_second_run_skips_extraction_and_fits(demo, monkeypatch):
    real_forward = extraction._run_forward

    def no_forward(backbone, stimuli, *args, **kwargs):
        # The config check's one blank probe image runs every time; the stimuli never again.
        if len(stimuli.ids) > 1:
            raise AssertionError("features should come from the cache")
        return real_forward(backbone, stimuli, *args, **kwargs)

    def no_fit(self, *args, **kwargs):
        raise AssertionError("fits should be reused")

    monkeypatch.setattr(extraction, "_run_forward", no_forward)
    monkeypatch.setattr(EncodingModel, "fit", no_fit)
    again = run_demo(demo.root, verbose=False, **SMALL)
    assert sorted(next(iter(again.study.reused.values()))) == sorted(next(iter(demo.study.scores.values())))
    assert again.summary.equals(demo.summary)


def test_interrupted_run_resumes(tmp_path, demo, monkeypatch):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(demo.root / "nsd", root / "nsd")
    shutil.copytree(demo.root / "work" / "features", root / "work" / "features")
    real_fit = EncodingModel.fit
    calls = []

    def failing_fit(self, *args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated interruption")
        calls.append(1)
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(EncodingModel, "fit", failing_fit)
    with pytest.raises(KeyboardInterrupt):
        run_demo(root, verbose=False, **SMALL)
    monkeypatch.setattr(EncodingModel, "fit", real_fit)
    resumed = run_demo(root, verbose=False, **SMALL)
    reused = next(iter(resumed.study.reused.values()))
    assert len(reused) == 2  # the two fits finished before the interruption
    assert resumed.summary.equals(demo.summary)


def test_shipped_demo_config_runs_as_is_on_the_demo_data(demo):
    # `neurodec demo` writes ./neurodec_demo; the config sits in ./pipelines beside it.
    pipelines = demo.root.parent / "pipelines"
    pipelines.mkdir(exist_ok=True)
    shutil.copy(REPO / "pipelines" / "encoding_demo.yaml", pipelines)
    study = run_encoding_study(load_config(pipelines / "encoding_demo.yaml"), verbose=False)
    scores = study.scores[1]
    assert sorted(scores) == [f"timm/resnet18/layer{i}" for i in range(1, 5)]
    # The demo's own study, from a fresh extraction and fit: the same scores up to float32 summation
    # order (a 3x3x512 convolution fan-in at layer4, 350 training samples).
    n_terms = 3 * 3 * 512 + 350
    for name, got in scores.items():
        np.testing.assert_allclose(got.r2, demo.study.scores[1][name].r2, rtol=float32_rtol(n_terms),
                                   atol=float32_atol(n_terms), equal_nan=True)
    assert study.outputs[1]["report"][0].is_file()


def test_shipped_nsd_config_checks_out_on_the_demo_data_with_random_weights(demo, tmp_path):
    text = (REPO / "pipelines" / "encoding_nsd.yaml").read_text()
    text = text.replace("root: /data/nsd", f"root: {demo.root / 'nsd'}").replace("subjects: [1, 2, 5, 7]", "subjects: [1]")
    text = text.replace("weights: pretrained", "weights: random")
    (tmp_path / "study.yaml").write_text(text)
    config = load_config(tmp_path / "study.yaml")
    assert config.checked and config.dataset.subjects == (1,) and len(config.backbones) == 3
    assert {b.weights for b in config.backbones} == {"random"}
