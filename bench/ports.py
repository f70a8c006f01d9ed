#!/usr/bin/env python3
"""Benchmark the port map and the port-holder check (issue 11).

Usage: bench/ports.py [N]          (default N=100 services, 2 ports each)

Compares this checkout's servicectl with a baseline binary that has no listening check
and no holder check (BASELINE=PATH, default: built from `git merge-base HEAD main`):

  1. `status` of N running services whose 2N ports are all listening (held by one helper
     process), and `ports` of the same services, against the baseline's `status`
     (target: both within 1.5 x);
  2. `check` of the N services against the baseline's `check`, (a) with nothing on
     their ports, (b) with every port held by another process (the holder of each is
     looked up through /proc/PID/fd: the worst case), target: at most 5 ms added.

Medians of RUNS (default 30) runs each, the variants interleaved so that a machine
busy with something else slows them alike; for check, whose sh evaluation makes it
noisy, also the best run of each (the cost without interference). python3 stdlib only; everything it starts
is stopped and its temporary playpen removed on exit.
"""

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RUNS = int(os.environ.get("RUNS", "30"))
N = int(sys.argv[1]) if len(sys.argv) > 1 else 100
PREFIX = int(os.environ.get("BENCH_PORT_PREFIX", "28000"))
SECOND = PREFIX + 1000  # the B ports: set explicitly


def build_current():
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=REPO, check=True)
    return os.path.join(REPO, "target/release/servicectl")


def build_baseline(tmp):
    if os.environ.get("BASELINE"):
        return os.environ["BASELINE"]
    rev = subprocess.run(
        ["git", "merge-base", "HEAD", "main"], cwd=REPO, check=True,
        capture_output=True, text=True).stdout.strip()
    src = os.path.join(tmp, "baseline")
    os.makedirs(src)
    archive = subprocess.Popen(["git", "archive", rev], cwd=REPO, stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", src], stdin=archive.stdout, check=True)
    archive.wait()
    print(f"bench: building the baseline ({rev[:10]}) ...", file=sys.stderr)
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=src, check=True,
                   env=dict(os.environ, CARGO_TARGET_DIR=os.path.join(REPO, "target/bench-baseline")))
    return os.path.join(REPO, "target/bench-baseline/release/servicectl")


def make_playpen(binary, root):
    subprocess.run([binary, "init", root], check=True, capture_output=True)
    shutil.copy("/bin/sleep", os.path.join(root, "bin/sl"))
    names = []
    for i in range(1, N + 1):
        d = os.path.join(root, "services", f"s{i}")
        os.makedirs(d)
        with open(os.path.join(d, "config"), "w") as f:
            f.write(
                f"service_program=sl\nservice_run_name=bench-s{i}\nservice_flags=1000\n"
                f"service_halt_timeout=2\n"
                f'service_required_envars="A{i}_PORT B{i}_PORT"\n'
                f"envar_A{i}_PORT_type=port\nA{i}_PORT_OFFSET={i}\n"
                f"envar_B{i}_PORT_type=port\nB{i}_PORT={SECOND + i}\n")
        names.append(f"s{i}")
    with open(os.path.join(root, "etc/roles/dev/config"), "w") as f:
        f.write(f'playpen_services="{" ".join(names)}"\nPORT_PREFIX={PREFIX}\n')


def hold_ports():
    """Listen on every port of the playpen, from this process."""
    held = []
    for i in range(1, N + 1):
        for port in (PREFIX + i, SECOND + i):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError as e:
                sys.exit(f"bench: port {port} is not free ({e}); set BENCH_PORT_PREFIX")
            s.listen()
            held.append(s)
    return held


def run(binary, root, *args, ok=(0,)):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLAYPEN_", "PORT_PREFIX"))}
    env["NO_COLOR"] = "1"
    t = time.perf_counter()
    p = subprocess.run([binary, "--playpen", root, *args], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t
    if p.returncode not in ok:
        sys.exit(f"bench: servicectl {' '.join(args)} exited {p.returncode}: {p.stderr[-2000:]}")
    return elapsed


def medians(variants, pick=statistics.median):
    """variants: name -> thunk; returns name -> median (or `pick`) seconds, interleaved runs."""
    times = {name: [] for name in variants}
    for _ in range(RUNS):
        for name, thunk in variants.items():
            times[name].append(thunk())
    return {name: pick(t) for name, t in times.items()}


def median_and_min(t):
    return statistics.median(t), min(t)


def ms(s):
    return f"{s * 1000:7.2f} ms"


def main():
    tmp = tempfile.mkdtemp(prefix="servicectl-bench-ports-")
    current = build_current()
    baseline = build_baseline(tmp)
    root = os.path.join(tmp, "pp")
    make_playpen(current, root)
    try:
        print(f"{N} services, 2 ports each, {RUNS} runs per figure (medians)\n")
        run(current, root, "start")
        held = hold_ports()
        run(current, root, "ports")  # fills the port cache, as any earlier run would
        run(current, root, "status")  # and the role cache
        m = medians({
            "status (baseline, no listening check)": lambda: run(baseline, root, "status"),
            "status (listening check)": lambda: run(current, root, "status"),
            "ports": lambda: run(current, root, "ports"),
        })
        base = m["status (baseline, no listening check)"]
        print("1. status and ports, every port listening")
        for name, t in m.items():
            print(f"   {name:40} {ms(t)}   {t / base:4.2f} x  (target <= 1.50 x)")

        run(current, root, "stop")
        print("\n2. check of every service (config evaluated each time)")
        for label, holding in (("(a) nothing on their ports", False),
                               ("(b) every port held by another process", True)):
            if not holding:
                for s in held:
                    s.close()
                held = []
            else:
                held = hold_ports()
            expect = (1,) if holding else (0,)
            m = medians({
                "baseline": lambda: run(baseline, root, "check", ok=(0, 1)),
                "current": lambda: run(current, root, "check", ok=expect),
            }, pick=median_and_min)
            (bmed, bmin), (cmed, cmin) = m["baseline"], m["current"]
            print(f"   {label}:\n"
                  f"      median: baseline {ms(bmed)}, with the holder check {ms(cmed)}, added {ms(cmed - bmed)}\n"
                  f"      best:   baseline {ms(bmin)}, with the holder check {ms(cmin)}, added {ms(cmin - bmin)}"
                  f"  (target <= 5 ms)")
        for s in held:
            s.close()
    finally:
        subprocess.run([current, "--playpen", root, "stop"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
