"""Machine-readable specs of dataset layouts, and checks of a root against them.

A spec (``data_specs/<name>.yaml``) lists a dataset's files as path patterns
with typed fields (``subj{subject:02d}``), the file format and what the file
must hold (dtype, number of dimensions, HDF5 datasets, MATLAB keys, table
columns). Loaders find files through :meth:`DatasetSpec.path` and
:meth:`DatasetSpec.find`; fixture writers place files with the same calls; and
:func:`check_root` reports what a root has, lacks, or holds malformed.

Entry fields in YAML::

    betas_volume_nifti:
      pattern: nsddata_betas/ppdata/subj{subject:02d}/{space}/{beta_version}/betas_session{session:02d}.nii.gz
      format: nifti          # a key of FILE_CHECKS
      dtype: int16           # optional
      ndim: 4                # optional
      datasets: {betas: {dtype: int16, ndim: 4}}   # hdf5 only
      keys: [masterordering, subjectim]            # mat / npz / pkl-dict
      columns: [cocoId, nsdId]                     # csv / tsv (a subset, any order)
      field_patterns: {hemi: "lh|rh"}              # optional regex a field's value must match
      required: true         # at least one file must match
      group: betas           # at least one entry of the group must match
      description: single-trial betas, volume
"""

from __future__ import annotations

import dataclasses
import re
import string
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = [
    "FILE_CHECKS",
    "CheckReport",
    "DatasetSpec",
    "EntrySpec",
    "check_file",
    "check_root",
    "list_specs",
    "load_spec",
    "specs_dir",
]

_FORMATTER = string.Formatter()


def specs_dir() -> Path:
    """The folder holding the ``<dataset>.yaml`` specs."""
    packaged = Path(__file__).resolve().parent.parent / "data_specs"
    if packaged.is_dir():  # installed wheel: shipped inside the package
        return packaged
    return Path(__file__).resolve().parents[2] / "data_specs"  # source checkout


@dataclasses.dataclass(frozen=True)
class EntrySpec:
    """One kind of file in a dataset layout (see the module docstring)."""

    key: str
    pattern: str
    format: str
    required: bool = False
    group: str | None = None
    dtype: str | None = None
    ndim: int | None = None
    datasets: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    keys: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    field_patterns: dict[str, str] = dataclasses.field(default_factory=dict)
    description: str = ""

    @property
    def fields(self) -> list[str]:
        """Names of the pattern's fields, in order."""
        return [name for _, name, _, _ in _FORMATTER.parse(self.pattern) if name]

    def path(self, root: str | Path, **fields: Any) -> Path:
        """The path of the file with these field values under ``root``."""
        missing = [f for f in self.fields if f not in fields]
        if missing:
            raise ValueError(f"Spec entry {self.key!r} needs values for field(s) {missing} to form a path.")
        return Path(root) / self.pattern.format(**fields)

    def regex(self, **fixed: Any) -> re.Pattern[str]:
        """A regex that matches relative paths of this entry and captures its fields."""
        parts: list[str] = []
        seen: set[str] = set()
        for literal, name, spec, _ in _FORMATTER.parse(self.pattern):
            parts.append(re.escape(literal))
            if name is None:
                continue
            if name in fixed:
                parts.append(re.escape(format(fixed[name], spec or "")))
            elif name in seen:
                parts.append(f"(?P={name})")
            else:
                width = re.fullmatch(r"0?(\d+)d", spec or "")
                body = rf"\d{{{width.group(1)}}}" if width else (r"\d+" if spec == "d" else r"[^/]+?")
                if name in self.field_patterns:
                    # e.g. keeps "{roi}.nii.gz" from also matching "lh.V1.nii.gz"
                    body = f"(?:{self.field_patterns[name]})"
                parts.append(f"(?P<{name}>{body})")
                seen.add(name)
        return re.compile("".join(parts))

    def glob(self, **fixed: Any) -> str:
        """A glob pattern for this entry's files, with ``fixed`` fields filled in."""
        out: list[str] = []
        for literal, name, spec, _ in _FORMATTER.parse(self.pattern):
            out.append(literal)
            if name is not None:
                out.append(format(fixed[name], spec or "") if name in fixed else "*")
        return "".join(out)

    def find(self, root: str | Path, **fixed: Any) -> list[tuple[dict[str, Any], Path]]:
        """Files of this entry under ``root``: (field values, path), sorted by path.

        Integer fields (``{session:02d}``) come back as ``int``.
        """
        root = Path(root)
        regex = self.regex(**fixed)
        int_fields = {n for _, n, s, _ in _FORMATTER.parse(self.pattern) if n and s and s.endswith("d")}
        found = []
        for path in sorted(root.glob(self.glob(**fixed))):
            match = regex.fullmatch(path.relative_to(root).as_posix())
            if match is None:
                continue
            values = {k: int(v) if k in int_fields else v for k, v in match.groupdict().items()}
            found.append(({**fixed, **values}, path))
        return found


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A dataset layout: named :class:`EntrySpec` objects plus descriptive metadata."""

    name: str
    title: str
    entries: dict[str, EntrySpec]
    citation: str = ""
    url: str = ""

    def entry(self, key: str) -> EntrySpec:
        try:
            return self.entries[key]
        except KeyError:
            import difflib

            close = difflib.get_close_matches(key, list(self.entries), n=3)
            raise ValueError(
                f"Spec {self.name!r} has no entry {key!r}." + (f" Close matches: {close}." if close else "")
            ) from None

    def path(self, key: str, root: str | Path, **fields: Any) -> Path:
        """Path of entry ``key`` under ``root`` for these field values."""
        return self.entry(key).path(root, **fields)

    def find(self, key: str, root: str | Path, **fixed: Any) -> list[tuple[dict[str, Any], Path]]:
        """Files of entry ``key`` present under ``root`` (see :meth:`EntrySpec.find`)."""
        return self.entry(key).find(root, **fixed)


def list_specs() -> list[str]:
    """Names of the dataset specs shipped with neurodec."""
    return sorted(p.stem for p in specs_dir().glob("*.yaml"))


@lru_cache(maxsize=None)
def load_spec(name: str) -> DatasetSpec:
    """Load the spec of dataset ``name`` (e.g. "nsd") from ``data_specs/``."""
    import yaml

    path = specs_dir() / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"Unknown dataset spec {name!r}. Known specs: {list_specs()}.")
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    entries = {}
    for key, fields in (raw.get("entries") or {}).items():
        fields = dict(fields)
        for tuple_field in ("keys", "columns"):
            fields[tuple_field] = tuple(fields.get(tuple_field, ()))
        unknown = set(fields) - {f.name for f in dataclasses.fields(EntrySpec)}
        if unknown:
            raise ValueError(f"{path}: entry {key!r} has unknown field(s) {sorted(unknown)}.")
        entries[key] = EntrySpec(key=key, **fields)
        if entries[key].format not in FILE_CHECKS:
            raise ValueError(f"{path}: entry {key!r} has unknown format {entries[key].format!r}.")
    return DatasetSpec(
        name=raw.get("name", name),
        title=raw.get("title", name),
        entries=entries,
        citation=raw.get("citation", ""),
        url=raw.get("url", ""),
    )


# ------------------------------------------------------------------ file checks
# Each check opens as little of the file as it can (headers, not data) and
# returns a list of problems, each a sentence saying what was expected.


def _dtype_problem(entry: EntrySpec, got: Any, what: str = "") -> list[str]:
    import numpy as np

    # Byte order is the format's business (MGH is always big-endian), not the spec's.
    if entry.dtype is not None and np.dtype(got).newbyteorder("=") != np.dtype(entry.dtype).newbyteorder("="):
        return [f"{what}dtype should be {entry.dtype}, got {np.dtype(got)}"]
    return []


def _ndim_problem(expected: int | None, shape: tuple[int, ...], what: str = "") -> list[str]:
    if expected is not None and len(shape) != expected:
        return [f"{what}should have {expected} dimensions, got shape {tuple(shape)}"]
    return []


def _check_nibabel(entry: EntrySpec, path: Path) -> list[str]:
    import nibabel as nib

    img = nib.load(path)
    shape = img.shape
    return _dtype_problem(entry, img.get_data_dtype()) + _ndim_problem(entry.ndim, shape)


def _check_hdf5(entry: EntrySpec, path: Path) -> list[str]:
    import h5py
    import numpy as np

    problems = []
    with h5py.File(path, "r") as f:
        for name, want in entry.datasets.items():
            if name not in f:
                problems.append(f"should hold dataset {name!r}; it holds {sorted(f.keys())}")
                continue
            ds = f[name]
            if "dtype" in want and np.dtype(ds.dtype) != np.dtype(want["dtype"]):
                problems.append(f"dataset {name!r} dtype should be {want['dtype']}, got {ds.dtype}")
            problems += _ndim_problem(want.get("ndim"), ds.shape, f"dataset {name!r} ")
    return problems


def _check_npy(entry: EntrySpec, path: Path) -> list[str]:
    import numpy as np

    arr = np.load(path, mmap_mode="r", allow_pickle=False)
    return _dtype_problem(entry, arr.dtype) + _ndim_problem(entry.ndim, arr.shape)


def _check_pickle_npy(entry: EntrySpec, path: Path) -> list[str]:
    import numpy as np

    obj = np.load(path, allow_pickle=True)
    obj = obj.item() if getattr(obj, "shape", None) == () else obj
    missing = [k for k in entry.keys if k not in obj] if isinstance(obj, dict) else []
    if entry.keys and not isinstance(obj, dict):
        return [f"should hold a pickled dict, got {type(obj).__name__}"]
    return [f"should have key(s) {missing}"] if missing else []


def _check_mat(entry: EntrySpec, path: Path) -> list[str]:
    import scipy.io

    names = {name for name, _, _ in scipy.io.whosmat(path)}
    missing = [k for k in entry.keys if k not in names]
    return [f"should hold variable(s) {missing}; it holds {sorted(names)}"] if missing else []


def _check_table(entry: EntrySpec, path: Path, sep: str) -> list[str]:
    import pandas as pd

    header = pd.read_csv(path, sep=sep, nrows=0)
    missing = [c for c in entry.columns if c not in header.columns]
    return [f"should have column(s) {missing}; it has {list(header.columns)}"] if missing else []


def _check_text(entry: EntrySpec, path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="strict")
    return [] if text.strip() else ["is empty"]


def _check_ctab(entry: EntrySpec, path: Path) -> list[str]:
    # FreeSurfer colour table: "index name [r g b a]" per line, 0 first.
    rows = [line.split() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    bad = [" ".join(r) for r in rows if len(r) < 2 or not r[0].lstrip("-").isdigit()]
    if bad:
        return [f"should have lines 'index name'; got {bad[0]!r}"]
    if not rows or int(rows[0][0]) != 0:
        return [f"should start with the line '0 Unknown'; got {' '.join(rows[0]) if rows else 'an empty file'!r}"]
    return []


def _check_image(entry: EntrySpec, path: Path) -> list[str]:
    from PIL import Image

    with Image.open(path) as img:
        img.verify()
    return []


def _check_exists(entry: EntrySpec, path: Path) -> list[str]:
    return []


FILE_CHECKS: dict[str, Callable[[EntrySpec, Path], list[str]]] = {
    "nifti": _check_nibabel,
    "mgh": _check_nibabel,
    "hdf5": _check_hdf5,
    "npy": _check_npy,
    "npy-pickle": _check_pickle_npy,
    "mat": _check_mat,
    "csv": lambda e, p: _check_table(e, p, ","),
    "tsv": lambda e, p: _check_table(e, p, "\t"),
    "text": _check_text,
    "ctab": _check_ctab,
    "image": _check_image,
    "json": lambda e, p: (__import__("json").loads(p.read_text(encoding="utf-8")), [])[1],
    "pickle": _check_exists,
    "any": _check_exists,
}


def check_file(entry: EntrySpec, path: str | Path) -> list[str]:
    """Problems of one file against its entry; an empty list when it conforms.

    A file that cannot be opened at all (corrupt, truncated) is reported as a
    problem rather than raising.
    """
    try:
        return FILE_CHECKS[entry.format](entry, Path(path))
    except Exception as exc:  # noqa: BLE001 - any failure to open is the finding
        return [f"could not be read as {entry.format} ({type(exc).__name__}: {exc})"]


@dataclasses.dataclass
class CheckReport:
    """What :func:`check_root` (files against the spec) and the dataset's consistency checks found.

    Attributes
    ----------
    present : dict of str -> list of Path
        Files found per entry.
    missing : list of str
        Sentences naming each required entry (or group) with no file.
    malformed : list of (Path, str)
        Each file that does not conform, and why.
    found : list of str
        What the consistency checks recognised (subjects, sessions, atlases), one line each.
    problems : list of str
        Inconsistencies the loader refuses (trial counts that disagree, a
        missing session, NaN betas, an empty ROI ...), one sentence each.
    notes : list of str
        Findings that do not stop the loader (e.g. a label no voxel carries).
    """

    spec: DatasetSpec
    root: Path
    present: dict[str, list[Path]]
    missing: list[str]
    malformed: list[tuple[Path, str]]
    found: list[str] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def usable(self) -> bool:
        """True when every required entry is present, no file is malformed and no consistency check failed."""
        return not self.missing and not self.malformed and not self.problems

    def format(self) -> str:
        """A human-readable report, one line per finding."""
        lines = [f"{self.spec.title} ({self.spec.name}) at {self.root}"]
        for key, paths in self.present.items():
            entry = self.spec.entries[key]
            if paths:
                lines.append(f"  ok       {key}: {len(paths)} file(s), e.g. {paths[0].relative_to(self.root)}")
            elif not entry.required and entry.group is None:
                lines.append(f"  absent   {key} (optional): {entry.pattern}")
        lines += [f"  found    {line}" for line in self.found]
        lines += [f"  note     {line}" for line in self.notes]
        lines += [f"  MISSING  {m}" for m in self.missing]
        lines += [f"  BAD      {p.relative_to(self.root)}: {why}" for p, why in self.malformed]
        lines += [f"  PROBLEM  {line}" for line in self.problems]
        lines.append("usable" if self.usable else "NOT usable: fix the MISSING/BAD/PROBLEM lines above")
        return "\n".join(lines)


def check_root(
    spec: DatasetSpec | str, root: str | Path, *, keys: Iterable[str] | None = None, max_files: int | None = 50
) -> CheckReport:
    """Check a dataset root against its spec.

    Parameters
    ----------
    spec : DatasetSpec or str
        The spec, or the name of a shipped one.
    root : path-like
        The dataset's root folder.
    keys : iterable of str, optional
        Check only these entries (default: all).
    max_files : int or None
        Open at most this many files per entry (headers only); None opens all.
    """
    spec = load_spec(spec) if isinstance(spec, str) else spec
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Dataset root {root} does not exist or is not a folder.")
    present: dict[str, list[Path]] = {}
    malformed: list[tuple[Path, str]] = []
    for key in keys if keys is not None else spec.entries:
        entry = spec.entry(key)
        paths = [p for _, p in entry.find(root)]
        present[key] = paths
        for path in paths if max_files is None else paths[:max_files]:
            malformed += [(path, problem) for problem in check_file(entry, path)]
    missing = [
        f"{k}: no file matches {spec.entries[k].pattern}"
        for k, paths in present.items()
        if spec.entries[k].required and not paths
    ]
    groups: dict[str, list[str]] = {}
    for k in present:
        if spec.entries[k].group:
            groups.setdefault(spec.entries[k].group, []).append(k)  # type: ignore[arg-type]
    for group, members in groups.items():
        if not any(present[m] for m in members):
            missing.append(f"group {group!r}: none of {members} has a file")
    return CheckReport(spec=spec, root=root, present=present, missing=missing, malformed=malformed)
