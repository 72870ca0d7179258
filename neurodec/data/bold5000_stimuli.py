"""BOLD5000 stimulus images and ImageNet labels.

The presented images live in three folders,
``BOLD5000_Stimuli/Scene_Stimuli/Presented_Stimuli/{COCO,ImageNet,Scene}/``,
and are addressed by file name (``COCO_train2014_000000000036.jpg``,
``n01440764_10110.JPEG``, ``airplanecabin1.jpg``): the ``stimulus_id`` of
:func:`~neurodec.data.bold5000.load_bold5000`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ._checks import ensure_listable
from .specs import load_spec
from .stimuli import Stimuli

__all__ = ["find_bold5000_stimuli", "load_bold5000_imagenet_labels", "load_bold5000_stimuli"]

STIMULUS_FOLDERS = ("COCO", "ImageNet", "Scene")


def find_bold5000_stimuli(root: str | Path) -> dict[str, Path]:
    """Path of every presented image under the three stimulus folders, by file name.

    Raises
    ------
    FileNotFoundError
        If none of the three folders exists, or none holds an image file.
    PermissionError
        If a stimulus folder exists but cannot be listed.
    ValueError
        If one file name occurs in two folders (the id would be ambiguous).
    """
    spec = load_spec("bold5000")
    base = spec.path("stimuli", root, source="COCO", filename="x").parent.parent
    if not any((base / folder).is_dir() for folder in STIMULUS_FOLDERS):
        raise FileNotFoundError(f"BOLD5000 stimulus folder {base} has none of the folders {list(STIMULUS_FOLDERS)}.")
    for folder in STIMULUS_FOLDERS:
        ensure_listable(base / folder, "BOLD5000 stimulus folder")
    found: dict[str, Path] = {}
    for fields, path in spec.find("stimuli", root):
        name = fields["filename"]
        # Skip other folders and hidden files (.DS_Store and the like travel with zip archives).
        if fields["source"] not in STIMULUS_FOLDERS or name.startswith(".") or not path.is_file():
            continue
        if name in found:
            raise ValueError(f"BOLD5000 stimulus {name} exists twice: {found[name]} and {path}.")
        found[name] = path
    if not found:
        present = [folder for folder in STIMULUS_FOLDERS if (base / folder).is_dir()]
        raise FileNotFoundError(
            f"The BOLD5000 stimulus folders {present} under {base} hold no image file; expected the presented "
            f"images there (e.g. {spec.entry('stimuli').pattern})."
        )
    return found


def load_bold5000_stimuli(root: str | Path, ids: Iterable[str] | None = None) -> Stimuli:
    """The BOLD5000 stimulus images, addressed by file name.

    Parameters
    ----------
    root : path-like
        BOLD5000 root (the folder holding ``BOLD5000_Stimuli``).
    ids : iterable of str, optional
        Image file names to include, e.g. ``responses.trials["stimulus_id"].unique()``;
        default every presented image found.

    Returns
    -------
    Stimuli
        Images read from the files on demand.

    Raises
    ------
    FileNotFoundError
        Naming the ids whose file is in none of the three folders.
    """
    found = find_bold5000_stimuli(root)
    ids = sorted(found) if ids is None else list(dict.fromkeys(ids))
    missing = [i for i in ids if i not in found]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} BOLD5000 stimulus file(s) are in none of {list(STIMULUS_FOLDERS)} under "
            f"{next(iter(found.values())).parent.parent}: {missing[:10]} (ids are image file names)."
        )
    return Stimuli.from_files({i: found[i] for i in ids}, name="bold5000")


def load_bold5000_imagenet_labels(root: str | Path, ids: Iterable[str] | None = None) -> dict[str, str]:
    """Class label of each ImageNet stimulus, from ``Image_Labels/imagenet_final_labels.txt``.

    Parameters
    ----------
    root : path-like
        BOLD5000 root.
    ids : iterable of str, optional
        Stimulus file names; default every image in the ``ImageNet`` folder.
        Names that are not ImageNet images (``n<synset>_<number>.JPEG``) or
        whose synset the file does not list get no entry.

    Returns
    -------
    dict of str -> str
        File name -> label line of its synset, e.g. ``"tench, Tinca tinca"``.
    """
    path = load_spec("bold5000").path("imagenet_labels", root)
    if not path.is_file():
        raise FileNotFoundError(f"BOLD5000 ImageNet label file {path} does not exist.")
    synsets: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        synset, _, label = line.strip().partition(" ")
        if synset:
            synsets.setdefault(synset, label.strip())
    if ids is None:
        ids = [name for name, p in find_bold5000_stimuli(root).items() if p.parent.name == "ImageNet"]
    labels = {}
    for name in ids:
        synset = name.split("_", 1)[0]
        if synset.startswith("n") and synset[1:].isdigit() and synset in synsets:
            labels[name] = synsets[synset]
    return labels
