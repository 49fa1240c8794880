"""maml.cpu: the CPU settings applied by one explicit call (never on import), recorded as in
effect, a user's value kept."""

import json
import os
import platform
import subprocess
import sys

from maml import cpu

SHOW = "import json, maml.cpu; print(json.dumps(maml.cpu.configure()))"


def settings_in_fresh_process(code: str = SHOW, **env) -> dict:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("MKL_DEBUG_CPU_TYPE", "MALLOC_MMAP_THRESHOLD_")}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def test_mkl_avx2_path_on_amd_only_and_heap_thresholds_on_linux():
    settings = settings_in_fresh_process()
    assert settings.get("MKL_DEBUG_CPU_TYPE") == ("5" if cpu.is_amd() else None)
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert settings["mallopt"] == f"mmap and trim thresholds {cpu.HEAP_LIMIT}"


def test_values_set_by_the_user_are_kept_and_recorded():
    settings = settings_in_fresh_process(MKL_DEBUG_CPU_TYPE="4", MALLOC_MMAP_THRESHOLD_="65536")
    assert settings == {"MKL_DEBUG_CPU_TYPE": "4", "MALLOC_MMAP_THRESHOLD_": "65536"}


def test_importing_the_library_changes_nothing_in_the_process():
    code = ("import json, os, maml, maml.data, maml.report, maml.train; "
            "print(json.dumps(os.environ.get('MKL_DEBUG_CPU_TYPE')))")
    assert settings_in_fresh_process(code) is None


def test_threads_are_set_by_the_same_call():
    code = ("import json, os, maml.cpu; maml.cpu.configure(threads=3); "
            "print(json.dumps(os.environ['OMP_NUM_THREADS']))")
    assert settings_in_fresh_process(code) == "3"
