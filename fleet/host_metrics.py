"""Metrics of this machine: CPU, memory, disk, load, cores (psutil) and GPUs (NVML or nvidia-smi)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import psutil

from core.domain import GpuInfo, HostMetrics

NVIDIA_SMI_QUERY = "index,name,utilization.gpu,memory.used,memory.total"


def host_metrics(host: str = "local", *, cpu_interval_s: float = 0.1, disk_path: str = "/") -> HostMetrics:
    """CPU, memory, disk, 1-minute load, core count and GPUs of the machine this runs on.

    cpu_interval_s is how long CPU use is sampled; 0 reuses psutil's last sample (0.0 on the first call).
    """
    started = time.perf_counter()
    cpu = psutil.cpu_percent(interval=cpu_interval_s if cpu_interval_s > 0 else None)
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return HostMetrics(
        host=host,
        cpu_percent=float(cpu),
        mem_percent=float(psutil.virtual_memory().percent),
        disk_percent=float(psutil.disk_usage(disk_path).percent),
        load1=float(load1),
        cpu_count=psutil.cpu_count(logical=True) or 1,
        gpus=gpu_info(),
        observed_in_ms=(time.perf_counter() - started) * 1000.0,
    )


def gpu_info() -> tuple[GpuInfo, ...]:
    """GPUs via NVML when pynvml imports, else nvidia-smi when on PATH; no GPU means an empty tuple."""
    gpus = _gpus_from_nvml()
    if gpus is not None:
        return gpus
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ()
    try:
        out = subprocess.run(
            [smi, f"--query-gpu={NVIDIA_SMI_QUERY}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return parse_nvidia_smi(out)


def parse_nvidia_smi(csv_text: str) -> tuple[GpuInfo, ...]:
    """Parse `nvidia-smi --query-gpu=index,name,utilization.gpu,memory.used,memory.total` csv (no units)."""
    gpus: list[GpuInfo] = []
    for line in csv_text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 5:
            continue
        index, name, util, used, total = parts
        gpus.append(
            GpuInfo(
                index=int(index),
                name=name,
                util_percent=_number(util),
                mem_used_mb=_number(used),
                mem_total_mb=_number(total),
            )
        )
    return tuple(gpus)


def _number(text: str) -> float:
    # nvidia-smi prints "[N/A]" or "[Not Supported]" for fields a board lacks.
    try:
        return float(text)
    except ValueError:
        return 0.0


def _gpus_from_nvml() -> tuple[GpuInfo, ...] | None:
    try:
        import pynvml  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # NVMLError when the library loads but there is no driver
        return None
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            util = pynvml.nvmlDeviceGetUtilizationRates(handle)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(
                GpuInfo(
                    index=index,
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    util_percent=float(util.gpu),
                    mem_used_mb=mem.used / 2**20,
                    mem_total_mb=mem.total / 2**20,
                )
            )
        return tuple(gpus)
    finally:
        pynvml.nvmlShutdown()
