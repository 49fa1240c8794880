"""Download verification, preprocessing and splits, on the real archives."""

import subprocess
import sys
import zipfile

import numpy as np
import pytest

from maml import data
from maml.datasets import OMNIGLOT
from conftest import MD5, SOURCE


def test_checksum_accepted(archives):
    for name, path in archives.items():
        assert data.md5sum(path) == MD5[name]
        data.verify_archive(path, MD5[name])


def test_wrong_checksum_rejected_and_nothing_left(tmp_path):
    dest = tmp_path / "out" / "images_background.zip"
    wrong = "0" * 32
    with pytest.raises(data.DataError) as error:
        data.fetch_archive("images_background", SOURCE, wrong, dest)
    message = str(error.value)
    assert "images_background.zip" in message
    assert wrong in message and MD5["images_background"] in message
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []


def test_official_default_checksums_reject_the_local_copy(tmp_path):
    """The default (official) sums must not silently accept a different archive."""
    dest = tmp_path / "images_evaluation.zip"
    with pytest.raises(data.DataError, match="checksum mismatch"):
        data.fetch_archive("images_evaluation", SOURCE,
                           data.OFFICIAL_MD5["images_evaluation"], dest)
    assert not dest.exists()


def test_truncated_archive_rejected(tmp_path, archives):
    folder = tmp_path / "src"
    folder.mkdir()
    raw = archives["images_evaluation"].read_bytes()
    (folder / "images_evaluation.zip").write_bytes(raw[: len(raw) // 2])
    truncated_md5 = data.md5sum(folder / "images_evaluation.zip")
    dest = tmp_path / "out" / "images_evaluation.zip"
    with pytest.raises(data.DataError, match="images_evaluation.zip: not a readable zip"):
        data.fetch_archive("images_evaluation", f"file://{folder}", truncated_md5, dest)
    assert not dest.exists()


def test_corrupt_member_rejected(tmp_path, archives):
    """Flip bytes inside a member: the md5 is recomputed, so only the zip CRC can catch it."""
    raw = bytearray(archives["images_evaluation"].read_bytes())
    with zipfile.ZipFile(archives["images_evaluation"]) as archive:
        info = archive.infolist()[10]
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 10
    raw[start:start + 8] = bytes(255 - b for b in raw[start:start + 8])
    path = tmp_path / "images_evaluation.zip"
    path.write_bytes(bytes(raw))
    with pytest.raises(data.DataError, match="images_evaluation.zip"):
        data.verify_archive(path, data.md5sum(path))


def test_missing_file_named(tmp_path):
    with pytest.raises(data.DataError, match="images_background.zip: file not found"):
        data.fetch_archive("images_background", str(tmp_path), "0" * 32, tmp_path / "x.zip")


def test_cli_fetch_wrong_md5_exits_nonzero(tmp_path):
    dest = tmp_path / "images_background.zip"
    result = subprocess.run(
        [sys.executable, "-m", "maml", "fetch", "images_background", "--source", SOURCE,
         "--md5", "1" * 32, "--out", str(dest)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "checksum mismatch" in result.stderr and "1" * 32 in result.stderr
    assert not dest.exists()


def test_counts_and_metadata(prepared):
    omniglot = prepared["data"]
    assert omniglot.images.shape == (1623, 20, 28, 28)
    assert omniglot.images.dtype == np.float32
    assert np.array_equal(omniglot.char_id, np.arange(1, 1624))
    background = omniglot.subset == "background"
    assert background.sum() == 964 and (~background).sum() == 659
    assert len(set(omniglot.alphabet[background])) == 30
    assert len(set(omniglot.alphabet[~background])) == 20
    assert omniglot.character[0] == "character01" and omniglot.alphabet[0] == "Arcadian"


def test_images_inverted_and_in_range(prepared):
    images = prepared["data"].images
    assert images.min() >= 0.0 and images.max() <= 1.0
    # strokes are 1 and background 0: the top row is nearly empty, most pixels are dark
    assert images[:, :, 0, :].mean() < 0.01
    assert 0.02 < images.mean() < 0.2
    # area filtering leaves grey edges, not a binary image
    assert len(np.unique(images[0, 0])) > 2


def test_preprocessing_is_byte_identical(tmp_path, archives, prepared):
    again = data.preprocess(archives, progress=False)
    data.save_characters(again, tmp_path / "again.npz")
    assert (tmp_path / "again.npz").read_bytes() == prepared["data_path"].read_bytes()
    loaded = data.load_characters(prepared["data_path"])
    assert np.array_equal(loaded.images, prepared["data"].images)


def test_finn_split(prepared):
    parts = data.load_split(prepared["splits"]["finn"])["parts"]
    assert [len(parts[p]) for p in ("train", "val", "test")] == [1100, 100, 423]
    _assert_partition(parts, 1623)


def test_lake_split(prepared):
    omniglot = prepared["data"]
    parts = data.load_split(prepared["splits"]["lake"])["parts"]
    assert len(parts["train"]) + len(parts["val"]) == 964
    assert set(omniglot.subset[parts["train"] + parts["val"]]) == {"background"}
    assert set(omniglot.subset[parts["test"]]) == {"evaluation"} and len(parts["test"]) == 659
    _assert_partition(parts, 1623)


def test_lake_alphabets_split_holds_out_whole_alphabets(prepared):
    """Lake's protocol with validation on whole background alphabets, each large enough for
    20-way tasks within it; training and testing as in the lake split."""
    omniglot = prepared["data"]
    parts = data.load_split(prepared["splits"]["lake_alphabets"])["parts"]
    train, val = (set(omniglot.alphabet[parts[p]]) for p in ("train", "val"))
    assert not train & val and len(val) == OMNIGLOT.splits["lake_alphabets"]["alphabets"]
    assert len(train | val) == 30 and set(omniglot.subset[parts["val"]]) == {"background"}
    for alphabet in val:  # every character of a held-out alphabet is in validation
        assert (omniglot.alphabet[parts["val"]] == alphabet).sum() == (
            omniglot.alphabet == alphabet).sum() >= (
                OMNIGLOT.splits["lake_alphabets"]["min_characters"])
    lake = data.load_split(prepared["splits"]["lake"])["parts"]
    assert parts["test"] == lake["test"]
    _assert_partition(parts, 1623)


def test_split_sizes_known_to_the_config_checks(prepared):
    """settings.SPLIT_SIZES, used to reject n_way before any data exists, matches make_split."""
    from maml.settings import SPLIT_SIZES

    for name in data.SPLITS:
        parts = data.make_split(prepared["data"], name)["parts"]
        assert {part: len(idx) for part, idx in parts.items()} == SPLIT_SIZES[name]


def test_split_is_deterministic(prepared):
    assert data.make_split(prepared["data"], "finn") == data.make_split(prepared["data"], "finn")
    assert data.make_split(prepared["data"], "finn", seed=2) != data.make_split(
        prepared["data"], "finn")


def _assert_partition(parts, total):
    sets = [set(parts[p]) for p in ("train", "val", "test")]
    assert sum(len(s) for s in sets) == total
    assert set().union(*sets) == set(range(total))
    for i in range(3):
        for j in range(i + 1, 3):
            assert not sets[i] & sets[j]


def _zip_with(path, members: dict):
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def test_the_same_archive_twice_is_refused(archives):
    twice = {"images_background": archives["images_evaluation"],
             "images_evaluation": archives["images_evaluation"]}
    with pytest.raises(data.DataError, match="unexpected layout at images_evaluation/.* "
                                             r"\(expected images_background/"):
        data.preprocess(twice, progress=False)


def test_an_empty_archive_is_refused(tmp_path, archives):
    empty = _zip_with(tmp_path / "images_background.zip", {})
    with pytest.raises(data.DataError, match="holds 0 alphabets and 0 characters; the official "
                                             "images_background archive has 30 and 964"):
        data.preprocess({**archives, "images_background": empty}, progress=False)


def test_an_archive_missing_a_character_is_refused(tmp_path, archives):
    with zipfile.ZipFile(archives["images_evaluation"]) as archive:
        members = {m: archive.read(m) for m in archive.namelist()
                   if m.endswith(".png") and "/character01/" not in m}
    partial = _zip_with(tmp_path / "images_evaluation.zip", members)
    with pytest.raises(data.DataError, match="characters; the official images_evaluation "
                                             "archive has 20 and 659"):
        data.preprocess({**archives, "images_evaluation": partial}, progress=False)


def test_drawings_of_another_size_are_refused():
    import cv2

    png = cv2.imencode(".png", np.full((50, 60), 255, np.uint8))[1].tobytes()
    with pytest.raises(data.DataError, match="x.png: 60x50 pixels, expected 105x105"):
        data.decode_image(png, "x.png", raw_size=105)


def test_cli_prepare_refuses_two_copies_and_writes_nothing(tmp_path, archives):
    folder = tmp_path / "src"
    folder.mkdir()
    for name in data.ARCHIVES:
        (folder / f"{name}.zip").write_bytes(archives["images_evaluation"].read_bytes())
    md5 = data.md5sum(folder / "images_evaluation.zip")
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "maml", "prepare", "--source", str(folder),
                             "--md5", md5, md5, "--out-dir", str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "unexpected layout" in result.stderr
    assert not (out / "omniglot28.npz").exists() and not (out / "splits").exists()


def test_a_missing_data_file_says_how_to_make_it(tmp_path):
    with pytest.raises(data.DataError, match="omniglot28.npz: no preprocessed Omniglot file "
                                             "here; prepare the data first: `python -m maml"):
        data.load_characters(tmp_path / "omniglot28.npz")
    result = subprocess.run([sys.executable, "-m", "maml", "train", "--data",
                             str(tmp_path / "omniglot28.npz")], capture_output=True, text=True)
    assert result.returncode == 2 and "python -m maml prepare" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_source_is_one_line_naming_the_file(tmp_path):
    """A closed local port: the download fails at once, offline as in CI."""
    dest = tmp_path / "images_background.zip"
    result = subprocess.run(
        [sys.executable, "-m", "maml", "fetch", "images_background", "--source",
         "http://127.0.0.1:9/omniglot", "--md5", "1" * 32, "--out", str(dest)],
        capture_output=True, text=True)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert "images_background.zip: could not download it from http://127.0.0.1:9" in errors[0]
    assert list(tmp_path.iterdir()) == []  # nothing half-fetched left behind
