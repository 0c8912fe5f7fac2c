"""Kinship at scale: full cosine matrix + pair selection for a large pool of origin models.

Reports wall times and, because this machine is shared and noisy, each figure as a ratio to a
reference measured in the same process: one plain ``numpy`` matrix product of the same shape
(``X @ X.T`` on the normalised scores), which is the floor any cosine implementation pays.

    python benchmarks/kinship.py [--models 5000] [--benchmarks 6] [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np

from karma_hf.kinship import Kinship


def _time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=5000)
    ap.add_argument("--benchmarks", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    values = rng.random((args.models, args.benchmarks)) * 100
    names = [f"model-{i:05d}" for i in range(args.models)]
    benches = [f"bench-{j}" for j in range(args.benchmarks)]

    x = (values - values.min(0)) / (values.max(0) - values.min(0))
    t_ref = _time(lambda: x @ x.T, args.repeats)
    t_build = _time(lambda: Kinship.from_values(names, benches, values), args.repeats)
    kin = Kinship.from_values(names, benches, values)
    t_select = {m: _time(lambda m=m: kin._select(m, np.arange(args.models)), args.repeats)
                for m in ("score", "sim", "score_sim")}
    # the builder's typical call: 4 candidates per instruction, many instructions (cached sets)
    sets = [rng.choice(args.models, size=4, replace=False) for _ in range(20000)]
    cands = [[names[i] for i in s] for s in sets]
    t0 = time.perf_counter()
    for c in cands:
        kin.select("sim", c)
    t_small = (time.perf_counter() - t0) / len(cands)

    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, numpy {np.__version__}")
    print(f"pool: {args.models} models x {args.benchmarks} benchmarks (median of {args.repeats})")
    print(f"reference  X @ X.T                : {t_ref * 1e3:8.1f} ms  (1.00x)")
    print(f"Kinship.from_values (norm+S_pref+cos): {t_build * 1e3:8.1f} ms  ({t_build / t_ref:.2f}x)")
    for m, t in t_select.items():
        print(f"select {m:<9} over the full pool : {t * 1e3:8.1f} ms  ({t / t_ref:.2f}x)")
    print(f"select sim, 4 candidates (per call): {t_small * 1e6:8.1f} us")


if __name__ == "__main__":
    main()
