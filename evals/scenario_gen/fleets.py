"""The held-out split's fleets, different from the tuned split's so its cases are not copies of tuned ones:

- alienware + pc: the seed's own host names; the brain host (16 threads, 16 GB, RTX 4070) and a 24-thread
  32 GB PC whose 7 research workers each measure ~4% of its CPU;
- brain + worker-a + worker-b: a 12-thread GPU brain and two 8-thread workers (an extract worker ~12.5%);
- gpu-box + cpu-box: an 8-thread GPU host and a 32-thread CPU host.
"""

from __future__ import annotations

from evals.scenario_gen.build import Json, gpu, host, workers


def ap_hosts(
    alien_cpu: float = 38.0, alien_mem: float = 66.0, pc_cpu: float = 40.0, pc_mem: float = 48.0
) -> list[Json]:
    return [
        host("alienware", alien_cpu, alien_mem, disk=80.0, gpus=[gpu(used_mb=1800.0, util=6.0)]),
        host("pc", pc_cpu, pc_mem, cores=24, disk=62.0),
    ]


def ap_workers(extract: int = 5, wisdom: int = 2) -> list[Json]:
    return [*workers("extract", "pc", extract, rss=700.0), *workers("wisdom", "pc", wisdom, cpu=45.0, rss=480.0)]


def tri_hosts(
    brain: tuple[float, float] = (45.0, 55.0),
    a: tuple[float, float] = (60.0, 50.0),
    b: tuple[float, float] = (35.0, 40.0),
) -> list[Json]:
    return [
        host("brain", *brain, cores=12, disk=70.0, gpus=[gpu(name="NVIDIA GeForce RTX 4070 SUPER", used_mb=900.0)]),
        host("worker-a", *a, cores=8, disk=45.0),
        host("worker-b", *b, cores=8, disk=50.0),
    ]


def gc_hosts(gpu_cpu: float = 30.0, gpu_mem: float = 45.0, cpu_cpu: float = 40.0, cpu_mem: float = 50.0) -> list[Json]:
    return [
        host("gpu-box", gpu_cpu, gpu_mem, cores=8, disk=72.0, gpus=[gpu(used_mb=700.0, util=2.0)]),
        host("cpu-box", cpu_cpu, cpu_mem, cores=32, disk=40.0),
    ]
