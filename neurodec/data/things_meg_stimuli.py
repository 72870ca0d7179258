"""THINGS images by number, for THINGS-MEG's ``stimulus_id``.

The THINGS database (Hebart et al. 2019) stores its 26,107 images as
``object_images/{concept}/{concept}_{nn}{letter}.jpg`` (1,854 concepts). THINGS-MEG's
events.tsv names an image by its number (``value``) and its concept by
``things_category_nr``; both count from 1 in the database's order: concepts
alphabetically, images by file name within a concept. The images are not in
the MEG release: the user points to a local copy.

The numbering is read from ``image_paths`` (one relative path per line, line
k = image k, as the database's image-path list) when given, else from the
sorted listing of the folder, which equals it only for the complete database.
Pass the trials' category numbers (``categories``) to have every image's
concept checked against its folder: a partial copy or another order is then
refused instead of silently showing the wrong images.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from ._checks import as_integer_ids, ensure_listable, ensure_readable
from .stimuli import Stimuli

__all__ = ["find_things_images", "load_things_meg_stimuli"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def find_things_images(images_root: str | Path, image_paths: str | Path | None = None) -> list[Path]:
    """Path of every THINGS image in number order (image k at position k - 1).

    Parameters
    ----------
    images_root : path-like
        The folder of concept folders (THINGS' ``object_images``).
    image_paths : path-like, optional
        A text file with one image path per line, relative to ``images_root``,
        in image-number order; default the sorted listing of ``images_root``.

    Raises
    ------
    FileNotFoundError
        When the folder holds no image, or a listed image does not exist.
    """
    root = Path(images_root)
    if not root.is_dir():
        raise FileNotFoundError(f"THINGS image folder {root} does not exist.")
    ensure_listable(root, "THINGS image folder")
    if image_paths is not None:
        listing = Path(image_paths)
        ensure_readable(listing, "THINGS image-path list")
        lines = [line.strip() for line in listing.read_text(encoding="utf-8").splitlines() if line.strip()]
        paths = [root / line for line in lines]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} image(s) listed in {listing} are not under {root}, e.g. {missing[0]}."
            )
        return paths
    paths = sorted(
        (p for p in root.glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")),
        key=lambda p: (p.parent.name, p.name),
    )
    if not paths:
        raise FileNotFoundError(
            f"THINGS image folder {root} holds no {'/'.join(IMAGE_SUFFIXES)} image in concept folders "
            "(expected {concept}/{concept}_01b.jpg)."
        )
    return paths


def load_things_meg_stimuli(
    images_root: str | Path,
    ids: Iterable[int] | None = None,
    *,
    image_paths: str | Path | None = None,
    categories: Mapping[int, int] | None = None,
) -> Stimuli:
    """THINGS images addressed by THINGS-MEG's image numbers.

    Parameters
    ----------
    images_root : path-like
        The local THINGS ``object_images`` folder.
    ids : iterable of int, optional
        Image numbers, e.g. ``responses.trials["stimulus_id"].unique()``;
        default every image found.
    image_paths : path-like, optional
        The image-path list fixing the numbering (see the module docstring).
    categories : mapping of int -> int, optional
        Image number -> ``things_category_nr`` (e.g. from the trials table);
        each image's concept folder must then be concept number ``nr`` in
        alphabetical order.

    Returns
    -------
    Stimuli
        Images read from the files on demand, ids the image numbers.

    Raises
    ------
    ValueError
        An image number beyond the images found, or a concept that disagrees
        with ``categories`` (naming the image, its folder and the expected concept).
    """
    paths = find_things_images(images_root, image_paths)
    numbers = list(range(1, len(paths) + 1)) if ids is None else list(dict.fromkeys(as_integer_ids(ids, "'ids'")))
    beyond = [n for n in numbers if not 1 <= n <= len(paths)]
    if beyond:
        raise ValueError(
            f"THINGS image number(s) {beyond[:5]} are outside 1..{len(paths)}, the images found under {images_root}. "
            "The folder is not the complete THINGS database: pass image_paths= with its image-path list."
        )
    if categories is not None:
        concepts = sorted({p.parent.name for p in paths})
        for number, category in categories.items():
            (number,), (category,) = as_integer_ids([number], "'categories' key"), as_integer_ids([category], "value")
            if not 1 <= number <= len(paths):
                continue
            folder = paths[number - 1].parent.name
            expected = concepts[category - 1] if 1 <= category <= len(concepts) else f"#{category}"
            if folder != expected:
                raise ValueError(
                    f"THINGS image {number} is {paths[number - 1]} (concept {folder!r}) but its things_category_nr "
                    f"{category} names concept {expected!r}: the numbering of {images_root} is not THINGS'. "
                    "Pass image_paths= with the database's image-path list."
                )
    return Stimuli.from_files({n: paths[n - 1] for n in numbers}, name="things-meg")
