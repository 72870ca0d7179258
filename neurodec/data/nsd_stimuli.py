"""NSD's 73k images (``nsd_stimuli.hdf5``, read lazily) with COCO captions."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from ._checks import as_integer_ids, ensure_readable
from .nsd_design import load_nsd_stim_info
from .specs import load_spec
from .stimuli import HDF5Images, Stimuli

__all__ = ["load_nsd_stimuli"]

CaptionFiles = str | os.PathLike | Sequence[str | os.PathLike] | Mapping[str, str | os.PathLike]


def _read_coco_captions(captions: CaptionFiles) -> dict[tuple[int, str], list[str]]:
    """{(cocoId, split): captions} from COCO caption annotation files."""
    if isinstance(captions, Mapping):
        by_split = {str(split): Path(p) for split, p in captions.items()}
    else:
        paths = [captions] if isinstance(captions, (str, os.PathLike)) else list(captions)
        by_split = {}
        for path in map(Path, paths):
            match = re.search(r"(train|val|test)\d{4}", path.name)
            if match is None:
                raise ValueError(
                    f"Cannot tell the COCO split of captions file {path} from its name (expected e.g. "
                    "captions_train2017.json); pass captions as a mapping {'train2017': path, ...}."
                )
            by_split[match.group(0)] = path
    out: dict[tuple[int, str], list[str]] = {}
    for split, path in by_split.items():
        if not path.is_file():
            raise FileNotFoundError(f"COCO captions file {path} does not exist.")
        for ann in json.loads(path.read_text(encoding="utf-8")).get("annotations", []):
            out.setdefault((int(ann["image_id"]), split), []).append(str(ann["caption"]).strip())
    return out


def load_nsd_stimuli(
    root: str | os.PathLike,
    *,
    ids: Sequence[int] | None = None,
    captions: CaptionFiles | None = None,
) -> Stimuli:
    """NSD's images, read lazily from ``nsd_stimuli.hdf5`` (the brick is never loaded whole).

    Parameters
    ----------
    root : path-like
        NSD root.
    ids : sequence of int, optional
        0-based 73k ids to include (default: every image in the brick).
        Integer-valued floats and numeric strings are accepted (the
        conversion is lossless); ``5.7`` or ``"abc"`` raise ValueError.
    captions : path, list of paths or mapping of split -> path, optional
        COCO caption annotations (``captions_train2017.json``,
        ``captions_val2017.json``), joined to NSD images on cocoId and
        cocoSplit through ``nsd_stim_info_merged.csv``.

    Returns
    -------
    Stimuli
        Ids are 0-based 73k ids; images uint8 arrays of shape (425, 425, 3) in the release.
    """
    import h5py

    path = load_spec("nsd").path("stimuli", root)
    if not path.is_file():
        raise FileNotFoundError(f"NSD stimulus file {path} does not exist.")
    ensure_readable(path, "NSD stimulus file")
    source = HDF5Images(path, "imgBrick")
    with h5py.File(path, "r") as f:
        if "imgBrick" not in f:
            raise ValueError(f"NSD stimulus file {path} has no dataset 'imgBrick'; it holds {sorted(f)}.")
        n_images = int(f["imgBrick"].shape[0])
    ids = list(range(n_images)) if ids is None else as_integer_ids(ids, "'ids' parameter of load_nsd_stimuli")
    unknown = [i for i in ids if not 0 <= i < n_images]
    if unknown:
        raise ValueError(f"Stimulus id(s) {unknown[:10]} do not exist in {path} (0-based ids 0..{n_images - 1}).")
    by_id = None
    if captions is not None:
        coco = _read_coco_captions(captions)
        info = load_nsd_stim_info(root)
        by_id = {}
        for i in ids:
            if i not in info.index:
                raise ValueError(f"Stimulus id {i} has no row in nsd_stim_info_merged.csv.")
            row = info.loc[i]
            by_id[i] = coco.get((int(row["cocoId"]), str(row["cocoSplit"])), [])
    return Stimuli(ids, source, captions=by_id, name="nsd")
