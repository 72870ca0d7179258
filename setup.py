"""Ship the top-level data_specs/ folder inside the package as neurodec/data_specs.

pyproject.toml cannot combine package discovery with a package-dir mapping;
this file adds the mapping so wheels carry the dataset specs.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["neurodec", "neurodec.*"]), "neurodec.data_specs"],
    package_dir={"neurodec.data_specs": "data_specs"},
)
