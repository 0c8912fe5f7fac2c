"""Kinship at scale: build + per-instruction selection for pools of 5k, 20k and 100k origin models.

Each pool size runs in its own process, so its peak memory (``ru_maxrss``) is its own. Because
this machine is shared and noisy, every time is also given as a ratio to a reference measured in
the same process:

* build: ``Kinship.from_values`` (min-max, S_pref, unit vectors; the full n x n matrix only up to
  ``FULL_MATRIX_LIMIT`` models) against the floor of that work, min-max normalisation plus row
  norms in plain numpy;
* per-instruction selection (the builder's call: 4 candidates, 20,000 distinct sets) against
  the floor, the 4 x 4 cosine block of those candidates computed directly with numpy;
* pool-wide selection (``karma kinship``'s pair per mode) as wall time only.

    python benchmarks/kinship.py [--sizes 5000,20000,100000] [--benchmarks 6]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

import numpy as np


def _one(models: int, benchmarks: int) -> dict[str, float]:
    from karma_hf.kinship import FULL_MATRIX_LIMIT, Kinship

    rng = np.random.default_rng(0)
    values = rng.random((models, benchmarks)) * 100
    names = [f"model-{i:06d}" for i in range(models)]
    benches = [f"bench-{j}" for j in range(benchmarks)]

    t0 = time.perf_counter()
    lo = values.min(0)
    x = (values - lo) / (values.max(0) - lo)
    np.linalg.norm(x, axis=1)
    t_ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    kin = Kinship.from_values(names, benches, values)
    t_build = time.perf_counter() - t0

    sets = [rng.choice(models, size=4, replace=False) for _ in range(20000)]
    unit = kin.unit
    t0 = time.perf_counter()
    for s in sets:
        u = unit[s]
        _ = u @ u.T
    t_ref_sel = (time.perf_counter() - t0) / len(sets)
    cands = [[names[i] for i in s] for s in sets]
    t0 = time.perf_counter()
    for c in cands:
        kin.select("sim", c)
    t_sel = (time.perf_counter() - t0) / len(cands)

    pool = {}
    for mode in ("score", "score_sim", "sim"):
        t0 = time.perf_counter()
        kin.select(mode, names)
        pool[mode] = time.perf_counter() - t0
    t0 = time.perf_counter()
    json.dumps(kin.to_dict())
    t_json = time.perf_counter() - t0
    return {
        "models": models,
        "full_matrix": models <= FULL_MATRIX_LIMIT,
        "build_s": t_build,
        "build_ratio": t_build / t_ref,
        "select4_us": t_sel * 1e6,
        "select4_ratio": t_sel / t_ref_sel,
        **{f"pool_{m}_s": t for m, t in pool.items()},
        "to_dict_json_s": t_json,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="5000,20000,100000")
    ap.add_argument("--benchmarks", type=int, default=6)
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(_one(args.one, args.benchmarks)))
        return
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, numpy {np.__version__}")
    print(
        f"{'models':>8} {'matrix':>6} {'build':>9} {'(x floor)':>9} {'select 4':>9} {'(x floor)':>9} "
        f"{'pool score':>10} {'pool sim':>9} {'to_dict':>8} {'peak RSS':>9}"
    )
    for n in (int(s) for s in args.sizes.split(",")):
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(n), "--benchmarks", str(args.benchmarks)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(
            f"{r['models']:>8} {'full' if r['full_matrix'] else 'lazy':>6} {r['build_s'] * 1e3:7.0f}ms "
            f"{r['build_ratio']:8.1f}x {r['select4_us']:7.1f}us {r['select4_ratio']:8.1f}x "
            f"{r['pool_score_s'] * 1e3:8.0f}ms {r['pool_sim_s']:8.1f}s {r['to_dict_json_s']:7.2f}s "
            f"{r['peak_rss_mb']:7.0f}MB"
        )


if __name__ == "__main__":
    main()
