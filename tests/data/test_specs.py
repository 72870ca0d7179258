"""The dataset spec engine (data_specs/*.yaml) and the check-data command."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from neurodec.cli import app
from neurodec.data import specs
from neurodec.data.fixtures.nsd import make_nsd_miniature
from neurodec.data.specs import EntrySpec, check_file, check_root, list_specs, load_spec


@pytest.fixture(scope="module")
def mini_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nsd_spec")
    make_nsd_miniature(root, shape=(3, 3, 2), n_sessions=2, trials_per_session=3, n_vertices=4)
    return root


def test_every_shipped_spec_loads():
    assert "nsd" in list_specs()
    for name in list_specs():
        spec = load_spec(name)
        assert spec.entries and all(e.format in specs.FILE_CHECKS for e in spec.entries.values())
    with pytest.raises(ValueError, match=r"Unknown dataset spec 'nds'. Known specs: \["):
        load_spec("nds")
    with pytest.raises(ValueError, match=r"has no entry 'desgin'. Close matches: \['design'\]"):
        load_spec("nsd").entry("desgin")


def test_path_and_find_round_trip(mini_root):
    spec = load_spec("nsd")
    path = spec.path("betas_volume_hdf5", mini_root, subject=1, space="func1pt8mm",
                     beta_version="betas_fithrf_GLMdenoise_RR", session=2)
    assert path.relative_to(mini_root).as_posix() == (
        "nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session02.hdf5"
    )
    found = spec.find("betas_volume_hdf5", mini_root, subject=1)
    assert [f["session"] for f, _ in found] == [1, 2] and found[1][1] == path
    with pytest.raises(ValueError, match=r"needs values for field\(s\) \['session'\]"):
        spec.path("betas_volume_hdf5", mini_root, subject=1, space="x", beta_version="y")


def test_field_patterns_keep_hemisphere_copies_apart(mini_root):
    spec = load_spec("nsd")
    whole = {f["roi"] for f, _ in spec.find("roi_volume", mini_root)}
    hemi = {(f["hemi"], f["roi"]) for f, _ in spec.find("roi_volume_hemi", mini_root)}
    assert whole == {"nsdgeneral", "prf-visualrois", "floc-faces"}
    assert ("lh", "floc-faces") in hemi and len(hemi) == 6
    entry = EntrySpec(key="x", pattern="{hemi}.{name}.mgz", format="any", field_patterns={"hemi": "lh|rh"})
    assert entry.regex().fullmatch("lh.a.b.mgz").groupdict() == {"hemi": "lh", "name": "a.b"}
    assert entry.regex().fullmatch("xh.a.mgz") is None


def test_check_root_reports_missing_and_malformed(mini_root, tmp_path):
    report = check_root("nsd", mini_root)
    assert report.usable, report.format()
    assert len(report.present["betas_surface"]) == 4  # lh/rh x 2 sessions, big-endian float32 accepted
    empty = check_root("nsd", tmp_path)
    assert not empty.usable
    assert any(m.startswith("design:") for m in empty.missing)
    assert any("group 'betas'" in m for m in empty.missing)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_root("nsd", tmp_path / "nope")


def test_file_checks_find_bad_files(tmp_path):
    spec = load_spec("nsd")
    bad_dtype = tmp_path / "b.nii.gz"
    nib.Nifti1Image(np.zeros((2, 2, 2, 3), np.int32), np.eye(4)).to_filename(bad_dtype)
    assert check_file(spec.entry("betas_volume_nifti"), bad_dtype) == ["dtype should be int16, got int32"]
    three_d = tmp_path / "c.nii.gz"
    nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4)).to_filename(three_d)
    assert "should have 4 dimensions" in check_file(spec.entry("betas_volume_nifti"), three_d)[0]
    corrupt = tmp_path / "d.hdf5"
    corrupt.write_bytes(b"\0" * 64)
    assert "could not be read as hdf5" in check_file(spec.entry("betas_volume_hdf5"), corrupt)[0]
    ctab = tmp_path / "x.mgz.ctab"
    ctab.write_text("1 V1\n2 V2\n")
    assert "should start with the line '0 Unknown'" in check_file(spec.entry("roi_ctab"), ctab)[0]
    ctab.write_text("0 Unknown\nV1 1\n")
    assert "should have lines 'index name'" in check_file(spec.entry("roi_ctab"), ctab)[0]
    ctab.write_text("0 Unknown 0 0 0 0\n1 V1 255 0 0 0\n")
    assert check_file(spec.entry("roi_ctab"), ctab) == []


def test_unknown_entry_field_is_rejected(tmp_path, monkeypatch):
    (tmp_path / "toy.yaml").write_text("name: toy\nentries:\n  a: {pattern: a.txt, format: text, colour: red}\n")
    monkeypatch.setattr(specs, "specs_dir", lambda: tmp_path)
    specs.load_spec.cache_clear()
    try:
        with pytest.raises(ValueError, match=r"entry 'a' has unknown field\(s\) \['colour'\]"):
            load_spec("toy")
    finally:
        specs.load_spec.cache_clear()


def test_cli_check_data(mini_root, tmp_path):
    runner = CliRunner()
    ok = runner.invoke(app, ["check-data", "nsd", str(mini_root)])
    assert ok.exit_code == 0, ok.output
    assert ok.output.strip().splitlines()[-1] == "usable"
    bad = runner.invoke(app, ["check-data", "nsd", str(tmp_path)])
    assert bad.exit_code == 1 and "MISSING  design" in bad.output
    assert runner.invoke(app, ["check-data", "nosuch", str(tmp_path)]).exit_code == 2
    assert runner.invoke(app, ["check-data", "nsd", str(tmp_path / "absent")]).exit_code == 1


@pytest.mark.parametrize("name", list_specs())
def test_cli_check_data_every_spec(name, tmp_path):
    result = CliRunner().invoke(app, ["check-data", name, str(tmp_path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert load_spec(name).title in result.output
    assert (result.exit_code == 0) == (result.output.strip().splitlines()[-1] == "usable")
