"""Device selection that fails early and clearly, so the code stays device-agnostic."""

from __future__ import annotations


class DeviceError(RuntimeError):
    """The requested device is not available to this Paddle build."""


def use_device(device: str) -> str:
    """`cpu`, `gpu` or `gpu:N`: set Paddle's device or explain why it cannot be used."""
    import paddle  # here, so that commands without a model (fetch, split) do not load Paddle

    kind = device.split(":")[0]
    if kind == "gpu":
        if not paddle.is_compiled_with_cuda():
            raise DeviceError(
                f"device {device!r} requested, but this Paddle build has no CUDA support; "
                "install Paddle's CUDA wheel (docs/pipeline.md, section \"Running the paper's "
                "protocol on a GPU\") "
                "or use device: cpu")
        if paddle.device.cuda.device_count() == 0:
            raise DeviceError(f"device {device!r} requested, but no GPU is visible")
    elif kind != "cpu":
        raise DeviceError(f"unknown device {device!r}; use cpu, gpu or gpu:N")
    paddle.set_device(device)
    return device
