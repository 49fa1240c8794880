"""Files: atomic, reproducible writes (a failed step never leaves a half-written output),
checked reads, and the workflow jobs' file conventions (settings files, data inputs)."""

from __future__ import annotations

import glob
import io
import json
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from maml.datasets import OMNIGLOT, dataset_of, one_shot_runs_dataset


class OverwriteError(RuntimeError):
    """A command was asked to write to a path it reads; nothing was written."""


def refuse_writing_inputs(outputs: dict, inputs: dict) -> None:
    """No command writes to a path it reads: each of `outputs` ({what: path}) is compared,
    resolved, with every path of `inputs` ({what: path or paths}); a match stops the command
    before any work, naming both. An output that is a folder is refused as early."""
    read = {}
    for what, paths in inputs.items():
        for path in paths if isinstance(paths, (list, tuple)) else [paths]:
            if path is not None:
                read.setdefault(Path(path).resolve(), what)
    for what, path in outputs.items():
        if path is not None and Path(path).is_dir():
            raise FileFormatError(f"{what} {path}: is a folder; name a file to write")
        if path is not None and Path(path).resolve() in read:
            raise OverwriteError(f"{what} {path} is also what this command reads as "
                                 f"{read[Path(path).resolve()]}: writing it would destroy it; "
                                 "name another path (nothing was written)")


class FileFormatError(RuntimeError):
    """A file this project wrote cannot be read back; the message names it and what to do."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temporary_prefix(path: Path) -> str:
    """The name prefix for this process's temporary file (or folder) beside `path`, which
    names the process so that one a killed writer left can be recognised; those are removed
    first."""
    _remove_stale_temporaries(path)
    return f".{path.name}.pid{os.getpid()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _remove_stale_temporaries(path: Path) -> None:
    """Remove the temporary files (or folders) for `path` whose process is gone (killed
    mid-write). Assumes the writers of one path share a machine, as a pipeline job's do."""
    for candidate in path.parent.glob(glob.escape(f".{path.name}.pid") + "*"):
        pid = candidate.name[len(f".{path.name}.pid"):].split(".")[0]
        if pid.isdigit() and not _alive(int(pid)):
            if candidate.is_dir():
                shutil.rmtree(candidate, ignore_errors=True)
            else:
                candidate.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call `write(handle)` on a temporary file beside `path`, then rename it into place, with
    the permissions an ordinary open() would give (mkstemp's are owner-only). Temporaries of
    `path` left by a killed writer are removed first."""
    path = Path(path)
    if path.is_dir():
        raise FileFormatError(f"{path}: is a folder; name a file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path))
    except OSError as error:  # e.g. a read-only folder, or a file where the folder should be
        raise FileFormatError(f"{path}: cannot be written ({error.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as error:  # e.g. the disk full: nothing half-written is left
        Path(tmp).unlink(missing_ok=True)
        raise FileFormatError(f"{path}: cannot be written ({error.strerror}); nothing was "
                              "written there") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text.encode()))


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=1) + "\n")


def read_json(path: str | os.PathLike):
    try:
        with open(path) as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise FileFormatError(f"{path}: not valid JSON ({error}); delete it and rerun the step "
                              "that writes it") from None


def save_arrays(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """A compressed .npz with fixed timestamps, so equal arrays give equal bytes."""

    def write(handle):
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for key, array in arrays.items():
                info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.asarray(array, order="C"),
                                          allow_pickle=False)
                archive.writestr(info, buffer.getvalue())

    atomic_write(path, write)


def load_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return {key: arrays[key] for key in arrays.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise FileFormatError(f"{path}: not a readable .npz file of this project ({error}); "
                              "delete it and rerun the step that writes it (a checkpoint: "
                              "training then starts again from the beginning)") from None


def settle_times(root: str | os.PathLike) -> int:
    """Give every file under `root` the modification time now; returns how many. A fresh
    clone's files carry checkout times in checkout order, so Snakemake would take a committed
    eval.json for older than the model.npz beside it, or a run's outputs for older than the
    workflow's scripts, and redo them; the committed results are consistent as committed."""
    files = [path for path in Path(root).rglob("*") if path.is_file()]
    now = time.time_ns()
    for path in files:
        os.utime(path, ns=(now, now))
    return len(files)


def write_settings_file(path: str | os.PathLike, settings: dict) -> None:
    """A job's settings file, <job>-settings-<key>.json (the workflow's rule settings_file).
    Those of earlier settings stay until the job has its result (`drop_older_settings`)."""
    write_json(path, settings)


def drop_older_settings(path: str | os.PathLike) -> None:
    """Remove the settings files beside `path` of the same job but other settings: called once
    the job's result is written, so a job that fails leaves the results and the file that
    describes them."""
    path = Path(path)
    job = path.name.split("-settings-")[0]
    for older in path.parent.glob(f"{job}-settings-*.json"):
        if older != path:
            older.unlink()


def data_inputs(inputs, *names: str, wildcards=None) -> list[str]:
    """A workflow job's data files (its rule's data_input), by input name. Each is a path, or
    nothing for a job that had its results when Snakemake planned and runs all the same (its
    model.npz asked for, --forcerun) in a workdir whose data are not made yet, e.g. a fresh
    clone: the error names the files to make (the split's from `wildcards`)."""
    split = getattr(wildcards, "split", None)
    dataset = dataset_of(split) if split else OMNIGLOT
    files = {"data": dataset.data_file, "split": dataset.split_files,
             "runs": one_shot_runs_dataset().runs_file}
    missing = [files[name].format(split=split or "<split>")
               for name in names if not getattr(inputs, name)]
    if missing:
        raise FileNotFoundError(
            f"{', '.join(missing)}: not made yet, and this job had its results when the run "
            "was planned, so Snakemake did not plan them; make them first with the same "
            f"--configfile files (./run.sh pipeline {' '.join(missing)} --configfile ...), "
            "then rerun")
    return [str(getattr(inputs, name)) for name in names]
