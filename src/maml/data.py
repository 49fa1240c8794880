"""Omniglot archives -> verified, preprocessed arrays and character splits.

Knows nothing of Paddle or Snakemake: every function takes paths and returns arrays or
writes files atomically, so a failed step never leaves a half-written output behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
import pooch
import requests
from tqdm import tqdm

from maml.datasets import OMNIGLOT, Archive, Dataset, dataset_of, datasets
from maml.files import load_arrays, read_json, save_arrays, temporary_prefix, write_json
from maml.settings import SPLITS

# What a dataset is comes from its registry entry (maml.datasets, datasets.yaml); these names
# are Omniglot's, the default of the commands that take no split (prepare, lake-runs).
ARCHIVES = tuple(archive.name for archive in OMNIGLOT.archives)
# The official addresses and md5 sums (the pipeline's `data` config defaults to them through
# `data_config`).
OFFICIAL_SOURCE = OMNIGLOT.source
OFFICIAL_RUNS_SOURCE = OMNIGLOT.one_shot_runs["source"]  # Lake's all_runs.zip
OFFICIAL_MD5 = {**{archive.name: archive.md5 for archive in OMNIGLOT.archives},
                OMNIGLOT.one_shot_runs["file"]: OMNIGLOT.one_shot_runs["md5"]}
IMAGE_SIZE = OMNIGLOT.image_size


class DataError(RuntimeError):
    """A data file is missing, corrupt or not the one the checksum promises."""


# --------------------------------------------------------------------------- download


def md5sum(path: str | os.PathLike) -> str:
    return pooch.file_hash(str(path), alg="md5")


def verify_archive(path: str | os.PathLike, expected_md5: str) -> None:
    """Fail loudly unless `path` is a readable zip with the expected md5."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path.name}: file not found at {path}")
    actual = md5sum(path)
    if actual != expected_md5.lower():
        raise DataError(
            f"{path.name}: checksum mismatch: expected md5 {expected_md5.lower()}, "
            f"got {actual} (wrong, truncated or corrupt file)"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
    except zipfile.BadZipFile as error:
        raise DataError(f"{path.name}: not a readable zip archive ({error})") from error
    if broken is not None:
        raise DataError(f"{path.name}: corrupt member {broken} in the archive")


def _local_path(source: str) -> Path | None:
    """The folder a `file://` URL or plain path names, or None for a network source."""
    parsed = urlparse(source)
    if parsed.scheme == "file":
        return Path(url2pathname(parsed.path))
    if parsed.scheme in ("http", "https", "ftp"):
        return None
    return Path(source)


def local_archive(source: str, name: str) -> Path | None:
    """The file an archive is copied from, for a local source (None for a network one)."""
    folder = _local_path(source)
    return None if folder is None else folder / f"{name}.zip"


def data_config(given: dict, repository: str | os.PathLike | None = None,
                dataset: Dataset = OMNIGLOT) -> dict:
    """The pipeline's `data` config for `dataset` (the config's split's), with the registry's
    sources and md5 sums where it names none. A relative folder that is not there from the
    working directory (e.g. the pipeline run with --directory elsewhere) is taken from
    `repository`, where config files name it from (config/offline-data.yaml's
    ../shared/omniglot)."""
    official = {archive.name: archive.md5 for archive in dataset.archives}
    defaults = {"source": dataset.source}
    if dataset.one_shot_runs:
        official[dataset.one_shot_runs["file"]] = dataset.one_shot_runs["md5"]
        defaults["runs_source"] = dataset.one_shot_runs["source"]
    unknown = sorted(set(given.get("md5", {})) - set(official))
    if unknown:
        raise DataError(f"data.md5: no archive named {', '.join(unknown)}; {dataset.name}'s "
                        f"archives are {', '.join(official)} (src/maml/datasets.yaml)")
    config = {**defaults, **given, "md5": {**official, **given.get("md5", {})}}
    for key in ("source", "runs_source"):
        if key not in config:
            continue
        folder = Path(config[key])
        if (repository is not None and "://" not in config[key] and not folder.is_absolute()
                and not folder.exists() and (Path(repository) / folder).exists()):
            config[key] = str((Path(repository) / folder).resolve())
    return config


def data_sources(config: dict, dataset: str, repository: str | os.PathLike) -> dict:
    """Where a dataset's archives come from and their md5 sums, for the pipeline: the config's
    `data` (through `data_config`) for the dataset of its split, the registry's for any other."""
    if dataset == dataset_of(config["split"]).name:
        return config["data"]
    return data_config({}, repository, datasets()[dataset])


def fetch_archive(name: str, source: str, expected_md5: str, dest: str | os.PathLike,
                  retries: int = 3) -> Path:
    """Copy or download `<source>/<name>.zip` to `dest`, verified before it appears there.

    The file is fetched into a temporary name beside `dest` and moved into place only
    after its md5 and zip structure check out, so a failure leaves nothing at `dest`.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    filename = f"{name}.zip"
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=temporary_prefix(dest)) as tmp:
        staged = Path(tmp) / filename
        folder = _local_path(source)
        if folder is not None:
            origin = folder / filename
            if not origin.is_file():
                raise DataError(f"{filename}: file not found in source folder {folder}")
            shutil.copyfile(origin, staged)
        else:
            fetcher = pooch.create(path=tmp, base_url=source.rstrip("/") + "/",
                                   registry={filename: None}, retry_if_failed=retries)
            try:
                fetcher.fetch(filename, progressbar=True)
            except (requests.RequestException, OSError) as error:
                reason = str(error).splitlines()[0][:200]
                raise DataError(f"{filename}: could not download it from {source} ({reason}); "
                                "check the address and the network, or point the source at a "
                                "folder holding the file (see config/offline-data.yaml)"
                                ) from None
        verify_archive(staged, expected_md5)
        os.replace(staged, dest)
    return dest


# --------------------------------------------------------------------------- preprocess


@dataclass(frozen=True)
class Characters:
    """All characters as images[character, drawer, size, size] plus per-character metadata."""

    images: np.ndarray  # float32 in [0, 1], stroke = 1
    char_id: np.ndarray  # official character ID, 1..1623
    alphabet: np.ndarray
    character: np.ndarray  # folder name, e.g. character07
    subset: np.ndarray  # "background" or "evaluation"

    @property
    def num_characters(self) -> int:
        return len(self.char_id)


def decode_image(encoded: bytes, name: str = "an image in the archive",
                 size: int = IMAGE_SIZE, raw_size: int | None = None) -> np.ndarray:
    """An encoded image (PNG, JPEG, BMP, ... of any size) as the network sees a drawing:
    grayscale, inverted (stroke = 1, background = 0), area-resized to size x size, in [0, 1].
    The one preprocessing of Omniglot's archives, Lake's one-shot runs and `predict`'s images."""
    import cv2  # here: the workflow imports this module to parse, OpenCV only to run

    if not encoded:
        raise DataError(f"{name}: an empty file, not an image")
    buffer = np.frombuffer(encoded, np.uint8)
    raw = cv2.imdecode(buffer, cv2.IMREAD_GRAYSCALE)
    if raw is None:
        raise DataError(f"{name}: cannot be decoded as an image")
    with_alpha = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if with_alpha is not None and with_alpha.ndim == 3 and with_alpha.shape[2] == 4:
        # strokes on a transparent background: composited on white, as a viewer shows them
        # (reading it as grayscale drops the alpha and leaves what is under it, often black)
        depth = np.iinfo(with_alpha.dtype).max
        alpha = with_alpha[..., 3:].astype(np.float32) / depth
        white = with_alpha[..., :3].astype(np.float32) * alpha + depth * (1 - alpha)
        raw = cv2.cvtColor((white * (255 / depth)).round().astype(np.uint8), cv2.COLOR_BGR2GRAY)
    if raw_size is not None and raw.shape != (raw_size, raw_size):
        raise DataError(f"{name}: {raw.shape[1]}x{raw.shape[0]} pixels, expected "
                        f"{raw_size}x{raw_size} as in the official archives")
    stroke = 1.0 - raw.astype(np.float32) / 255.0
    small = cv2.resize(stroke, (size, size), interpolation=cv2.INTER_AREA)
    return np.clip(small, 0.0, 1.0)


def check_dark_on_light(image: np.ndarray, name: str) -> None:
    """Refuse a drawing that is not dark strokes on a light background (as Omniglot's are):
    after `decode_image`'s inversion its border, the background, must be mostly dark."""
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    if border.mean() > 0.5:
        raise DataError(f"{name}: looks like light strokes on a dark background (mean border "
                        f"{border.mean():.2f} after inversion); Omniglot's drawings are dark on "
                        "light, so invert the image first")


def read_archive(path: str | os.PathLike, archive: Archive, dataset: Dataset = OMNIGLOT,
                 progress: bool = True):
    """Yield (char_id, alphabet, character, drawer images) for each character of an archive,
    after checking that it holds what the registry says `archive` holds: its top folder, its
    numbers of alphabets and characters, each with the dataset's drawings per character at
    its raw size. The images come at the dataset's image size."""
    path = Path(path)
    with zipfile.ZipFile(path) as opened:
        names = sorted(n for n in opened.namelist() if n.endswith(".png"))
        groups: dict[tuple[str, str], list[str]] = {}
        for member in names:
            parts = member.split("/")
            if len(parts) != 4 or parts[0] != archive.name:
                raise DataError(f"{path.name}: unexpected layout at {member} (expected "
                                f"{archive.name}/<alphabet>/<character>/<image>)")
            groups.setdefault((parts[1], parts[2]), []).append(member)
        found = (len({a for a, _ in groups}), len(groups))
        if found != (archive.alphabets, archive.characters):
            raise DataError(f"{path.name}: holds {found[0]} alphabets and {found[1]} "
                            f"characters; the official {archive.name} archive has "
                            f"{archive.alphabets} and {archive.characters}")
        for (alphabet, character), members in tqdm(
                sorted(groups.items()), desc=path.name, unit="char", disable=not progress):
            if len(members) != dataset.drawers:
                raise DataError(f"{path.name}: {alphabet}/{character} has {len(members)} "
                                f"drawings, expected {dataset.drawers}")
            ids = {Path(m).name.split("_")[0] for m in members}
            if len(ids) != 1:
                raise DataError(f"{path.name}: {alphabet}/{character} mixes IDs {sorted(ids)}")
            images = np.stack([decode_image(opened.read(m), m, dataset.image_size,
                                            dataset.raw_size) for m in members])
            yield int(ids.pop()), alphabet, character, images


def preprocess(archives: dict[str, str | os.PathLike], progress: bool = True,
               dataset: Dataset = OMNIGLOT) -> Characters:
    """Decode, invert and area-resize every drawing of `dataset`'s archives (`archives`: the
    path of each, by name), ordered by character ID."""
    rows = []
    for archive in dataset.archives:
        for char_id, alphabet, character, images in read_archive(archives[archive.name],
                                                                 archive, dataset, progress):
            rows.append((char_id, alphabet, character, archive.subset, images))
    rows.sort(key=lambda row: row[0])
    ids = [row[0] for row in rows]
    if len(set(ids)) != len(ids):
        raise DataError(f"the archives repeat character IDs ({len(ids)} characters, "
                        f"{len(set(ids))} distinct IDs): is one archive given twice?")
    return Characters(
        images=np.stack([row[4] for row in rows]).astype(np.float32),
        char_id=np.array([row[0] for row in rows], dtype=np.int32),
        alphabet=np.array([row[1] for row in rows]),
        character=np.array([row[2] for row in rows]),
        subset=np.array([row[3] for row in rows]),
    )


def save_characters(data: Characters, path: str | os.PathLike) -> None:
    save_arrays(path, {field: getattr(data, field) for field in Characters.__dataclass_fields__})


PREPARE_HINT = ("prepare the data first: `python -m maml prepare` (official archives; offline: "
                "--source ../shared/omniglot --md5 <background> <evaluation>) or "
                f"`./run.sh pipeline {OMNIGLOT.data_file} "
                f"{OMNIGLOT.split_files.format(split='<split>')}`")


def _require(path: str | os.PathLike, what: str) -> None:
    if not Path(path).is_file():
        raise DataError(f"{path}: no {what} here; {PREPARE_HINT}")


def load_characters(path: str | os.PathLike) -> Characters:
    _require(path, "preprocessed Omniglot file")
    arrays = load_arrays(path)
    missing = [field for field in Characters.__dataclass_fields__ if field not in arrays]
    if missing:
        raise DataError(f"{path}: not a preprocessed character dataset (no {', '.join(missing)}); "
                        f"{PREPARE_HINT}")
    data = Characters(**{field: arrays[field] for field in Characters.__dataclass_fields__})
    images = data.images
    if images.ndim != 4 or images.shape[2] != images.shape[3] or images.dtype.kind != "f":
        raise DataError(f"{path}: images must be float arrays [character, drawer, size, size], "
                        f"got {images.dtype} {images.shape}")
    if any(len(getattr(data, field)) != len(images) for field in Characters.__dataclass_fields__):
        raise DataError(f"{path}: the images and their character records differ in length")
    if not np.isfinite(images).all():
        raise DataError(f"{path}: the images hold non-finite values")
    return data


# --------------------------------------------------------------------------- splits


def make_split(data: Characters, name: str, seed: int = 1) -> dict:
    """Character indices (into `data`) of the train, val and test parts of a split, as its
    registry entry (datasets.yaml) describes it; the parts' sizes are checked against it.

    shuffled (finn): every character in a seeded order, the parts in turn, as the original
    MAML code does (1100/100/423). held_out_characters (lake): `train_subset`'s characters for
    training, a seeded `val` of them held out for validation, `test_subset`'s for testing.
    held_out_alphabets (lake_alphabets): the same with `alphabets` whole alphabets of at least
    `min_characters` characters held out, in a seeded order, so that validation tasks can be
    drawn within one alphabet as Lake's runs are.
    """
    try:
        spec = dataset_of(name).splits[name]
    except ValueError:
        raise ValueError(f"unknown split {name!r}; choose one of {SPLITS}") from None
    rng = np.random.default_rng(seed)
    everything = np.arange(data.num_characters)
    if spec["kind"] == "shuffled":
        order = rng.permutation(everything)
        ends = np.cumsum([spec["train"], spec["val"]])
        parts = {"train": order[:ends[0]], "val": order[ends[0]:ends[1]], "test": order[ends[1]:]}
    else:
        training = data.subset == spec["train_subset"]
        test = everything[data.subset == spec["test_subset"]]
        if spec["kind"] == "held_out_characters":
            shuffled = rng.permutation(everything[training])
            parts = {"train": shuffled[spec["val"]:], "val": shuffled[:spec["val"]],
                     "test": test}
        else:  # held_out_alphabets
            names, counts = np.unique(data.alphabet[training], return_counts=True)
            order = rng.permutation(len(names))
            held_out = [names[i] for i in order if counts[i] >= spec["min_characters"]]
            val = training & np.isin(data.alphabet, held_out[:spec["alphabets"]])
            parts = {"train": everything[training & ~val], "val": everything[val],
                     "test": test}
    sizes = {part: len(idx) for part, idx in parts.items()}
    if sizes != {part: spec[part] for part in parts}:
        raise DataError(f"split {name}: parts of {sizes} characters, where its registry entry "
                        f"(datasets.yaml) says {({part: spec[part] for part in parts})}")
    return {"split": name, "seed": seed,
            "parts": {part: sorted(int(i) for i in idx) for part, idx in parts.items()}}


def save_split(split: dict, path: str | os.PathLike) -> None:
    write_json(path, split)


def load_split(path: str | os.PathLike, name: str | None = None,
               num_characters: int | None = None) -> dict:
    """A split file, checked: a mapping of parts, each a list of distinct character indices
    (within `num_characters` where given), no character in two parts; with `name`, refused
    unless it is that split (a run records its split's name, which must be the one it
    trained on)."""
    _require(path, "split file")
    split = read_json(path)
    parts = split.get("parts") if isinstance(split, dict) else None
    if not isinstance(parts, dict) or not all(
            isinstance(v, list) and all(isinstance(i, int) and not isinstance(i, bool)
                                        for i in v) for v in parts.values()):
        raise DataError(f"{path}: not a split file of this project (a mapping with \"parts\", "
                        "each a list of character indices)")
    if name is not None and split.get("split") != name:
        raise DataError(f"{path}: the {split.get('split')!r} split, but the settings say split "
                        f"{name!r}; give that split's file or --split_name "
                        f"{split.get('split')}")
    seen = {}
    for part, indices in parts.items():
        for index in indices:
            if num_characters is not None and not 0 <= index < num_characters:
                raise DataError(f"{path}: part {part!r} names character {index}, outside the "
                                f"data's 0..{num_characters - 1}")
            if index in seen:
                raise DataError(f"{path}: character {index} is in part {seen[index]!r} and in "
                                f"part {part!r}")
            seen[index] = part
    return split


def split_hash(split: dict) -> str:
    """A split's identity by its content (its parts), not its name: a run records it, and
    every command that reads the run's split checks it."""
    return hashlib.sha256(json.dumps(split["parts"], sort_keys=True).encode()).hexdigest()[:16]
