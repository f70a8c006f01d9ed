#!/usr/bin/env python3
"""Benchmark `servicectl playpens` (issue 16): 10 playpens of 10 services each.

Usage: bench/playpens.py [PLAYPENS [SERVICES]]     (default 10 10)

Makes PLAYPENS throw-away playpens with a registry of their own (XDG_STATE_HOME in a
temporary directory), each with SERVICES project-local services running `sleep` and
one typed port each that a helper socket holds (so every row has ports listening), the
first playpen under a supervisor, the others started directly; then runs
`servicectl playpens` RUNS (default 50) times and reports the median and best wall time
(target: median under 20 ms). python3 stdlib only; everything it starts is stopped and
its temporary directories removed on exit.

Environment: SERVICECTL=PATH (default target/release/servicectl, built if missing),
RUNS=N.
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


def binary():
    path = os.environ.get("SERVICECTL")
    if path:
        return path
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO, check=True)
    return os.path.join(REPO, "target/release/servicectl")


def main():
    pens = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    services = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    runs = int(os.environ.get("RUNS", "50"))
    exe = binary()
    top = tempfile.mkdtemp(prefix="servicectl-bench-playpens-")
    env = dict(os.environ, XDG_STATE_HOME=os.path.join(top, "state"), NO_COLOR="1")
    env.pop("PLAYPEN_ROOT", None)
    roots, held = [], []

    def sc(root, *args):
        done = subprocess.run([exe, "--playpen", root, *args], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if done.returncode != 0:
            sys.exit(f"servicectl {' '.join(args)} in {root} failed:\n{done.stderr.decode()}")

    try:
        for p in range(pens):
            root = os.path.join(top, f"pen{p}")
            subprocess.run([exe, "init", root], env=env, stdout=subprocess.DEVNULL, check=True)
            roots.append(root)
            prefix = 45000 + p * 100
            names = [f"s{i}" for i in range(services)]
            with open(os.path.join(root, "etc/roles/dev/config"), "w") as f:
                f.write(f'playpen_services="{" ".join(names)}"\nPORT_PREFIX={prefix}\nPLAYPEN_TAG=pen{p}\n')
            for i, name in enumerate(names):
                d = os.path.join(root, "services", name)
                os.makedirs(d)
                with open(os.path.join(d, "config"), "w") as f:
                    f.write("service_program=sleep\nservice_flags=1000\n"
                            f"service_run_name=bench-{name}\nservice_required_envars=P_PORT\n"
                            f"P_PORT_OFFSET={i}\nenvar_P_PORT_type=port\n")
            if p == 0:
                sc(root, "supervise", "--daemon")
                sc(root, "wait", "--timeout", "20")
            else:
                sc(root, "start")
            # Held once the services run (start refuses ports in use by others).
            for i in range(services):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", prefix + i))
                s.listen()
                held.append(s)
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            out = subprocess.run([exe, "playpens"], env=env, stdout=subprocess.PIPE, check=True)
            times.append((time.perf_counter() - t) * 1000)
        lines = out.stdout.decode().splitlines()
        assert len(lines) == pens + 1, out.stdout.decode()
        print(out.stdout.decode(), end="")
        print(f"servicectl playpens, {pens} playpens x {services} services, {runs} runs: "
              f"median {statistics.median(times):.2f} ms, best {min(times):.2f} ms")
    finally:
        for root in roots:
            for args in (["shutdown"], ["stop"]):
                subprocess.run([exe, "--playpen", root, *args], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for s in held:
            s.close()
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
