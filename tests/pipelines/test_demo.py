"""The main job: the demo recovers the planted encoding model; re-runs reuse work."""

import pytest

from neurodec.backbones import extraction
from neurodec.encoding import EncodingModel
from neurodec.pipelines.demo import run_demo

SMALL = {"n_sessions": 3, "trials_per_session": 150, "n_shared": 25}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    return run_demo(root, verbose=False, **SMALL)


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


def test_second_run_skips_extraction_and_fits(demo, monkeypatch):
    def no_forward(*args, **kwargs):
        raise AssertionError("features should come from the cache")

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
