"""Shared fixtures: the real Omniglot archives, prepared once per test session.

OMNIGLOT_SOURCE points at a folder (or file:// URL) holding the two archives; it defaults
to ../shared/omniglot beside the repository. OMNIGLOT_MD5 gives their md5 sums as
"background,evaluation" (default: those of the shared copy, from config/offline-data.yaml;
for the official archives, those of maml.data.OFFICIAL_MD5).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from maml.cpu import configure

configure()  # as every entry point does, before Paddle is imported

from maml import data  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SOURCE = os.environ.get("OMNIGLOT_SOURCE", str(REPO.parent / "shared" / "omniglot"))
SHARED_COPY = yaml.safe_load((REPO / "config" / "offline-data.yaml").read_text())["data"]
MD5 = (dict(zip(data.ARCHIVES, os.environ["OMNIGLOT_MD5"].split(","))) if "OMNIGLOT_MD5" in
       os.environ else {name: SHARED_COPY["md5"][name] for name in data.ARCHIVES})


@pytest.fixture(scope="session")
def archives(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("archives")
    return {name: data.fetch_archive(name, SOURCE, MD5[name], out / f"{name}.zip")
            for name in data.ARCHIVES}


@pytest.fixture(scope="session")
def prepared(tmp_path_factory, archives) -> dict:
    """Preprocessed data and both splits, as files, like the pipeline's prepare rules."""
    out = tmp_path_factory.mktemp("prepared")
    omniglot = data.preprocess(archives, progress=False)
    data.save_characters(omniglot, out / "omniglot28.npz")
    splits = {}
    for name in data.SPLITS:
        splits[name] = out / f"{name}.json"
        data.save_split(data.make_split(omniglot, name), splits[name])
    return {"data": omniglot, "data_path": out / "omniglot28.npz", "splits": splits}


@pytest.fixture(scope="session")
def finished(tmp_path_factory):
    """The small offline config's pipeline run to its end (tests/workflow_runs.py), shared by
    the tests of what it makes and of what reruns; they read it or dry-run on it."""
    from workflow_runs import SMALL, snakemake

    workdir = tmp_path_factory.mktemp("workflow")
    snakemake(workdir, "--cores", "2", config=SMALL)
    return workdir
