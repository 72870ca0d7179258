"""The README's Python code runs, on the data `neurodec demo` writes.

Every ```python block of README.md is executed in order, in one namespace,
in a temporary working folder. Two substitutions stand in for what a test
machine lacks, and nothing else is changed: the dataset root "/data/nsd" is
the demo's simulated NSD folder, and pretrained weights (a download) are
random weights of the same architecture.
"""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks(text):
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_readme_has_python_blocks():
    assert len(_python_blocks(README.read_text())) >= 2


def test_readme_python_blocks_run_on_the_demo_data(demo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "readme"}
    for i, block in enumerate(_python_blocks(README.read_text())):
        code = block.replace('"/data/nsd"', repr(str(demo.root / "nsd"))).replace('weights="pretrained"', 'weights="random"')
        exec(compile(code, f"README.md python block {i + 1}", "exec"), namespace)  # noqa: S102
    assert (tmp_path / "study" / "derivatives" / "neurodec").is_dir()
