"""Files the project writes are readable by others, and unreadable ones are named in errors."""

import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from maml.files import FileFormatError, load_arrays, read_json, save_arrays, write_json


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_written_files_have_the_modes_open_would_give(tmp_path, umask_022):
    write_json(tmp_path / "a.json", {"x": 1})
    save_arrays(tmp_path / "b.npz", {"w": np.zeros(3)})
    for name in ("a.json", "b.npz"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.npz"]  # no temp files


def test_corrupt_json_is_named(tmp_path):
    (tmp_path / "eval.json").write_text('{"accuracy": 0.9')
    with pytest.raises(FileFormatError, match=r"eval.json: not valid JSON .* delete it"):
        read_json(tmp_path / "eval.json")


def test_corrupt_npz_is_named(tmp_path):
    (tmp_path / "checkpoint.npz").write_bytes(os.urandom(300))
    with pytest.raises(FileFormatError, match=r"checkpoint.npz: not a readable .npz file"):
        load_arrays(tmp_path / "checkpoint.npz")


def test_cli_names_a_model_of_random_bytes(tmp_path):
    (tmp_path / "model.npz").write_bytes(os.urandom(300))
    result = subprocess.run([sys.executable, "-m", "maml", "predict", "--model",
                             str(tmp_path / "model.npz"), "--support", str(tmp_path),
                             "--query", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "train.json: not found" in result.stderr  # predict needs the run's settings first
    (tmp_path / "train.json").write_text('{"settings": {}}')
    result = subprocess.run([sys.executable, "-m", "maml", "predict", "--model",
                             str(tmp_path / "model.npz"), "--support", str(tmp_path),
                             "--query", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "model.npz: not a readable .npz file" in result.stderr


WRITER = """
import sys, time
from maml.files import atomic_write

def write(handle):
    handle.write(b"partial")
    handle.flush()
    print("writing", flush=True)
    time.sleep(600)

atomic_write(sys.argv[1], write)
"""


def _writer_mid_write(target):
    """A process stopped in the middle of writing `target` (it prints once its bytes are out)."""
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE,
                              text=True)
    assert writer.stdout.readline().strip() == "writing"
    return writer


def test_a_write_killed_midway_leaves_nothing_behind_after_the_next_write(tmp_path):
    target = tmp_path / "checkpoint.npz"
    killed, running = _writer_mid_write(target), _writer_mid_write(target)
    killed.kill()
    killed.wait()
    try:
        assert len(list(tmp_path.iterdir())) == 2 and not target.exists()
        save_arrays(target, {"a": np.arange(3)})
        # the killed writer's partial file is gone; the running writer's is left alone
        hidden = [p.name for p in tmp_path.iterdir() if p.name != "checkpoint.npz"]
        assert len(hidden) == 1 and hidden[0].startswith(f".checkpoint.npz.pid{running.pid}.")
        assert load_arrays(target)["a"].tolist() == [0, 1, 2]
    finally:
        running.kill()
        running.wait()


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path):
    """A write that fails (the disk full) is named with its reason; no temporary file and no
    output are left, and an earlier file of that name is kept."""
    import errno

    from maml.files import atomic_write, write_text

    def full(handle):
        handle.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(FileFormatError, match="out.json: cannot be written \\(No space left on "
                       "device\\); nothing was written there"):
        atomic_write(tmp_path / "out.json", full)
    assert list(tmp_path.iterdir()) == []
    write_text(tmp_path / "out.json", "kept\n")
    with pytest.raises(FileFormatError):
        atomic_write(tmp_path / "out.json", full)
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
    assert (tmp_path / "out.json").read_text() == "kept\n"
