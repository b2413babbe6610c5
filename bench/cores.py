"""Benchmark: what two cores of this machine give two independent model fits at once, the
ceiling of any two-worker speed-up (issue 18's grid target is 1.7x on 2 cores).

One child process fits alone, pinned to the first CPU; then two children fit the same work at
once, one per CPU, with nothing else of ours running. Each child fits, single-threaded, what the
EIS grid fits (LightGBM, a random forest, a logistic regression) on a matrix of the EIS grid's
shape (50,000 officer-dates x 300 features, seeded synthetic numbers: the cost of a fit depends
on the shape, not on the values), and runs a pure-Python loop and a small in-cache matrix
product as controls that touch little memory. The two are interleaved and repeated, since other
guests share the host.

Throughput of the pair = 2 x (time alone) / (the slower child's time): 2.0 means the second
core is a whole core for that work; below it, two fits at once slow each other down (shared
cache and memory bandwidth, host scheduling), and no executor can recover that.

Run: ``.venv/bin/python bench/cores.py [--repeats 3]`` (about 80 s per repeat on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROWS, COLUMNS = 50_000, 300


def child(cpu: int) -> None:
    """Fit each kind of work once, single-threaded, on CPU ``cpu``; print seconds per kind."""
    os.sched_setaffinity(0, {cpu})
    import lightgbm as lgb
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    X = rng.normal(size=(ROWS, COLUMNS))
    y = (X[:, :5].sum(axis=1) + rng.normal(size=ROWS) > 2).astype(int)
    small = rng.normal(size=(120, 120))  # 115 KB: stays in the core's own cache

    def python_loop() -> None:
        total = 0
        for i in range(8_000_000):
            total += i

    def in_cache_product() -> None:
        for _ in range(4_000):
            small @ small

    work = {
        "lightgbm (200 trees)": lambda: lgb.LGBMClassifier(
            n_estimators=200, num_leaves=15, n_jobs=1, verbose=-1).fit(X, y),
        "random forest (20 trees)": lambda: RandomForestClassifier(
            n_estimators=20, max_depth=10, n_jobs=1, random_state=0).fit(X, y),
        "logistic regression": lambda: LogisticRegression(max_iter=300).fit(X, y),
        "control: python loop": python_loop,
        "control: in-cache product": in_cache_product,
    }
    seconds = {}
    with threadpool_limits(limits=1):
        for name, fn in work.items():
            started = time.perf_counter()
            fn()
            seconds[name] = time.perf_counter() - started
    print(json.dumps(seconds))


def run(cpus: list[int]) -> list[dict[str, float]]:
    """One child per CPU in ``cpus``, started together; their seconds per kind of work."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    children = [subprocess.Popen([sys.executable, __file__, "--child", str(c)], env=env,
                                 stdout=subprocess.PIPE, text=True) for c in cpus]
    return [json.loads(c.communicate()[0].strip().splitlines()[-1]) for c in children]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        print("one CPU: nothing to measure")
        return
    pair = cpus[:2]
    print(f"CPUs {pair}; {args.repeats} repeat(s), alone and two at once interleaved; load "
          f"before {os.getloadavg()[0]:.1f}")
    ratios: dict[str, list[float]] = {}
    for repeat in range(args.repeats):
        order = ["alone", "pair"] if repeat % 2 == 0 else ["pair", "alone"]
        measured = {how: run(pair[:1] if how == "alone" else pair) for how in order}
        alone, both = measured["alone"][0], measured["pair"]
        for name, seconds in alone.items():
            slower = max(b[name] for b in both)
            ratio = 2 * seconds / slower
            ratios.setdefault(name, []).append(ratio)
            print(f"  repeat {repeat + 1}  {name:26s} alone {seconds:6.2f} s   two at once "
                  f"{both[0][name]:6.2f} / {both[1][name]:6.2f} s   throughput x{ratio:.2f}",
                  flush=True)
    print(f"throughput of two at once over one alone (median of {args.repeats}; 2.00 = two "
          f"whole cores); load after {os.getloadavg()[0]:.1f}:")
    for name, values in ratios.items():
        values.sort()
        print(f"  {name:26s} x{values[len(values) // 2]:.2f}   (range x{values[0]:.2f}-"
              f"x{values[-1]:.2f})")


if __name__ == "__main__":
    main()
