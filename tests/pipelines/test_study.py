"""An encoding study from a config: several subjects, sequentially or on a Dask cluster."""

import numpy as np
import pytest

from neurodec.data.fixtures.nsd import make_nsd_miniature
from float32_tolerance import float32_atol, float32_rtol
from neurodec.pipelines import config_from_dict, run_encoding_study

# Dask workers extract features and fit with other thread counts than the main process:
# float32 sums of another order, over a 3x3x64 convolution fan-in (ResNet-18 layer1)
# and over the ~100 training samples of the ridge fit.
N_TERMS = 3 * 3 * 64 + 100


@pytest.fixture(scope="module")
def nsd_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nsd")
    make_nsd_miniature(root, random_state=1, n_subjects=2, n_sessions=2, trials_per_session=60, n_shared=6, image_size=32,
                       formats=("hdf5",), surface=False)
    return root


def _config(nsd_root, out, scheduler=None):
    return config_from_dict(
        {
            "name": "two subjects",
            "dataset": {"name": "nsd", "root": str(nsd_root), "subjects": [1, 2], "options": {"roi": "nsdgeneral"}},
            "backbones": [{"name": "timm/resnet18", "weights": "random", "layers": ["layer1"], "pooling": "avg"}],
            "model": {"alphas": [1.0, 100.0, 10000.0], "cv": 3},
            "outputs": {"root": str(out), "figures": False, "report": True, "atlas": "prf-visualrois"},
            "scheduler": scheduler,
            "device": "cpu",
        },
        source="test",
    )


def test_study_on_a_local_dask_cluster_equals_sequential(nsd_root, tmp_path):
    sequential = run_encoding_study(_config(nsd_root, tmp_path / "seq"), verbose=False)
    distributed = run_encoding_study(_config(nsd_root, tmp_path / "dask", scheduler="local"), verbose=False)
    assert sorted(sequential.scores) == sorted(distributed.scores) == [1, 2]
    for subject in (1, 2):
        a = sequential.scores[subject]["timm/resnet18/layer1"]
        b = distributed.scores[subject]["timm/resnet18/layer1"]
        np.testing.assert_allclose(a.r2, b.r2, rtol=float32_rtol(N_TERMS), atol=float32_atol(N_TERMS))
        assert distributed.outputs[subject]["report"][0].is_file()
    # Both subjects' outputs sit side by side in one derivatives folder.
    subjects = sorted(p.name for p in (tmp_path / "dask" / "derivatives" / "neurodec").glob("sub-*"))
    assert subjects == ["sub-01", "sub-02"]


def _break_subject_2(root):
    # Passes the up-front checks (the file exists) but cannot be read when the subject runs.
    for path in (root / "nsddata_betas" / "ppdata" / "subj02").rglob("betas_session01.hdf5"):
        path.write_bytes(b"not an HDF5 file")


@pytest.mark.parametrize("scheduler", [None, "local"])
def test_a_failing_subject_is_named_and_the_others_finish(nsd_root, tmp_path, scheduler, capfd, caplog):
    import shutil

    from neurodec.pipelines import StudyError, check_study

    root = tmp_path / "nsd"
    shutil.copytree(nsd_root, root)
    config = check_study(_config(root, tmp_path / "out", scheduler=scheduler))
    _break_subject_2(root)
    with pytest.raises(StudyError, match=r"1 subject\(s\) failed \(finished: 1\):\n  subject 2: ") as info:
        run_encoding_study(config, verbose=False)
    assert list(info.value.failures) == [2]
    assert "subject 2:\nTraceback" in info.value.tracebacks()  # also from a Dask worker
    assert list(info.value.result.scores) == [1]
    assert info.value.result.outputs[1]["report"][0].is_file()
    # Dask stays quiet when not verbose: no scheduler/worker chatter on the console or in the logs.
    assert "distributed." not in capfd.readouterr().err
    assert not [r for r in caplog.records if r.name.startswith(("distributed", "dask")) and r.levelno < 40]


def test_one_subject_runs_without_starting_a_cluster(nsd_root, tmp_path, monkeypatch):
    import dataclasses

    import distributed

    from neurodec.pipelines import encoding

    def no_cluster(*args, **kwargs):
        raise AssertionError("one subject must run in this process")

    monkeypatch.setattr(distributed, "LocalCluster", no_cluster)
    monkeypatch.setattr(distributed, "Client", no_cluster)
    ran = []
    monkeypatch.setattr(encoding, "run_subject", lambda config, subject, verbose: ran.append(subject) or ({}, {}, []))
    config = dataclasses.replace(_config(nsd_root, tmp_path, scheduler="local"), checked=True)
    config = dataclasses.replace(config, dataset=dataclasses.replace(config.dataset, subjects=(2,)))
    assert run_encoding_study(config, verbose=False).scores == {2: {}} and ran == [2]
