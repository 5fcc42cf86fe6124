#!/usr/bin/env python3
"""Interleaved A/B runs of bench_train_step (issue 13): each round runs every variant once, in order,
so a load change on a shared machine hits all variants alike. Prints one line per run and the median
and spread (min-max) of images/s per variant, with the process's CPU seconds (user + sys, all
threads) per second of wall time: spinning OpenMP threads show as CPU time without more images/s.

  python3 bench/interleave.py --rounds 5 --filter lcmae \
      base=OMP_NUM_THREADS=1:build/base/bench/bench_train_step \
      new=OMP_NUM_THREADS=1:build/bench/bench_train_step

A variant is label=ENV=V,ENV=V:binary (the env part may be empty: label=:binary).
"""
import argparse, json, os, resource, statistics, subprocess, time

ap = argparse.ArgumentParser()
ap.add_argument("variants", nargs="+")
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--filter", default="lcmae")
ap.add_argument("--alternate", action="store_true", help="reverse the order on odd rounds (ABBA)")
ap.add_argument("--min-time", default=None, help="--benchmark_min_time (seconds); default: the binary's")
a = ap.parse_args()

variants = []
for v in a.variants:
    label, rest = v.split("=", 1)
    env_part, binary = rest.rsplit(":", 1)
    env = dict(kv.split("=", 1) for kv in env_part.split(",") if kv)
    variants.append((label, env, binary))

res = {label: [] for label, _, _ in variants}
cpu_ms = {label: [] for label, _, _ in variants}
for r in range(a.rounds):
    for label, env, binary in (variants[::-1] if a.alternate and r % 2 else variants):
        cmd = [binary, f"--benchmark_filter={a.filter}", "--benchmark_format=json"]
        if a.min_time: cmd.append(f"--benchmark_min_time={a.min_time}")
        e = dict(os.environ); e.update(env)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.time()
        out = subprocess.run(cmd, env=e, capture_output=True, text=True, check=True).stdout
        wall = time.time() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        b = json.loads(out)["benchmarks"][0]
        load = os.getloadavg()[0]
        res[label].append(b["images/s"])
        cpu_ms[label].append(b["cpu_time"])  # ms per step of the main thread: at 1 thread, not load-bound
        print(f"round {r} {label:>10}: {b['images/s']:7.2f} img/s  main-thread CPU {b['cpu_time']:7.1f} ms/step  loss {b['loss']!r}  threads {b['threads']:.0f}  "
              f"iters {b['iterations']}  process CPU/wall {cpu / wall:.2f}  load1 {load:.2f}", flush=True)
print()
for label, xs in res.items():
    print(f"{label:>10}: median {statistics.median(xs):7.2f} img/s  min {min(xs):7.2f}  max {max(xs):7.2f}  n {len(xs)}")
