"""Package-level contracts: light import, CLI entry point, registry errors."""

import subprocess
import sys

import pytest

from neurodec._registry import Registry


def test_import_is_light():
    code = (
        "import sys, neurodec; heavy = {'torch', 'timm', 'diffusers', 'nibabel', 'mne', 'transformers',"
        " 'open_clip', 'nilearn', 'h5py', 'sklearn', 'dask'};"
        " print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_help_lists_commands():
    out = subprocess.run(
        [sys.executable, "-m", "neurodec.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "version" in out.stdout


def test_registry_unknown_name_lists_close_matches():
    reg: Registry[int] = Registry("backbone")
    reg.add("resnet50", 1)
    reg.add("resnet18", 2)
    with pytest.raises(ValueError, match="Close matches: resnet50"):
        reg.get("resnet5O")
    with pytest.raises(ValueError, match="already registered"):
        reg.add("resnet50", 3)
    assert reg.names("resnet*") == ["resnet18", "resnet50"]
