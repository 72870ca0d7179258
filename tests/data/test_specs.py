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


def _write_with_anatomy(root, shape=(4, 5, 3), **anatomy):
    """A one-subject, one-session NSD written by write_nsd with the given anatomy volumes."""
    from neurodec.data.fixtures.nsd import NSDSubjectData, make_nsd_design, write_nsd

    rng = np.random.default_rng(0)
    design = make_nsd_design(n_images=8, n_shared=2, n_sessions=1, trials_per_session=6, random_state=rng)
    betas = np.round(rng.normal(size=(*shape, 6)) * 300) / 300
    subject = NSDSubjectData(betas=[betas], affine=np.diag([1.8, 1.8, 1.8, 1.0]), **anatomy)
    images = rng.integers(0, 256, (8, 4, 4, 3), dtype=np.uint8)
    return write_nsd(root, design=design, images=images, subjects={1: subject}, formats=("nifti",))


def test_functional_space_anatomy_entries_name_nsd_files_and_are_optional(tmp_path):
    spec = load_spec("nsd")
    for key, name in (("anat_t1", "T1_to_func1pt8mm.nii.gz"), ("mean_epi", "mean.nii.gz"),
                      ("brainmask", "brainmask.nii.gz")):
        entry = spec.entry(key)
        assert not entry.required and entry.group is None and entry.format == "nifti" and entry.ndim == 3
        path = spec.path(key, tmp_path, subject=1, space="func1pt8mm")
        assert path.relative_to(tmp_path).as_posix() == f"nsddata/ppdata/subj01/func1pt8mm/{name}"
    assert spec.path("anat_t1", tmp_path, subject=8, space="func1mm").name == "T1_to_func1mm.nii.gz"
    # The space written twice in the T1's path must agree, and only functional spaces qualify.
    regex = spec.entry("anat_t1").regex()
    assert regex.fullmatch("nsddata/ppdata/subj01/func1mm/T1_to_func1mm.nii.gz")["space"] == "func1mm"
    assert regex.fullmatch("nsddata/ppdata/subj01/func1mm/T1_to_func1pt8mm.nii.gz") is None
    assert spec.entry("mean_epi").regex().fullmatch("nsddata/ppdata/subj01/anat/mean.nii.gz") is None


def test_fixture_writes_anatomy_that_checks_against_the_spec(tmp_path):
    shape = (4, 5, 3)
    t1 = np.linspace(0, 1000, 60).reshape(shape)
    mask = t1 > 200
    root = _write_with_anatomy(tmp_path / "with", shape, t1=t1, mean_epi=t1 / 2, brainmask=mask)
    report = check_root("nsd", root)
    assert report.usable and not report.malformed, report.format()
    for key in ("anat_t1", "mean_epi", "brainmask"):
        (fields, path), = load_spec("nsd").find(key, root)
        assert fields == {"subject": 1, "space": "func1pt8mm"}
        image = nib.load(path)
        assert image.shape == shape and np.allclose(image.affine, np.diag([1.8, 1.8, 1.8, 1.0]))
    written = nib.load(load_spec("nsd").path("anat_t1", root, subject=1, space="func1pt8mm"))
    np.testing.assert_allclose(written.get_fdata(), t1, rtol=1e-6)
    assert written.get_data_dtype() == np.float32
    assert np.array_equal(nib.load(report.present["brainmask"][0]).get_fdata() == 1, mask)
    # Without anatomy nothing is written, and the check says the entries are absent but optional.
    bare = check_root("nsd", _write_with_anatomy(tmp_path / "without", shape))
    assert bare.usable and not bare.present["anat_t1"]
    assert "absent   anat_t1 (optional)" in bare.format()


def test_fixture_refuses_anatomy_off_the_functional_grid(tmp_path):
    with pytest.raises(ValueError, match=r"NSDSubjectData.t1 must be on the functional grid, shape \(4, 5, 3\)"):
        _write_with_anatomy(tmp_path, (4, 5, 3), t1=np.zeros((4, 5, 2)))
