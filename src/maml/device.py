"""Device selection that fails early and clearly, so the code stays device-agnostic."""

from __future__ import annotations

import re


class DeviceError(RuntimeError):
    """The requested device is not available to this Paddle build."""


def use_device(device: str) -> str:
    """`cpu`, `gpu` or `gpu:N`: set Paddle's device or explain why it cannot be used."""
    import paddle  # here, so that commands without a model (fetch, split) do not load Paddle

    if not re.fullmatch(r"cpu|gpu(:[0-9]+)?", device):
        raise DeviceError(f"unknown device {device!r}; use cpu, gpu or gpu:N")
    kind = device.split(":")[0]
    if kind == "gpu":
        if not paddle.is_compiled_with_cuda():
            raise DeviceError(
                f"device {device!r} requested, but this Paddle build has no CUDA support; "
                "install Paddle's CUDA wheel (docs/pipeline.md, section \"Running the paper's "
                "protocol on a GPU\") "
                "or use device: cpu")
        visible = paddle.device.cuda.device_count()
        if visible == 0:
            raise DeviceError(f"device {device!r} requested, but no GPU is visible")
        if ":" in device and int(device.split(":")[1]) >= visible:
            raise DeviceError(f"device {device!r} requested, but only {visible} GPU(s) are "
                              f"visible (gpu:0 to gpu:{visible - 1})")
    paddle.set_device(device)
    return device
