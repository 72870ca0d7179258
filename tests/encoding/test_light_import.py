"""Importing the encoding and viz packages, and the score functions, stays light."""

import subprocess
import sys


def test_encoding_and_viz_import_light():
    code = (
        "import sys, neurodec.encoding, neurodec.viz; neurodec.encoding.pearson_r; neurodec.encoding.summarize_rois;"
        " neurodec.viz.bids_filename; heavy = {'torch', 'sklearn', 'nibabel', 'nilearn', 'matplotlib', 'h5py'};"
        " print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
