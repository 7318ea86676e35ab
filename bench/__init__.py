"""Benchmarks: each module has `run(out_dir) -> dict` and writes its JSON into bench/out/."""
