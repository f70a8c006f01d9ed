#!/usr/bin/env python3
"""Measurement helpers for bench/bench.sh (see that script for the overview).

Everything here times `servicectl` from the outside, the way a user experiences it:
the clock starts just before the command is launched and the figures are wall-clock
milliseconds. Subcommands (each prints one JSON object on stdout unless noted):

  round BIN PLAYPEN N             one `start` + `stop` cycle of services s1..sN (process
                                  events from the kernel, else /proc polled every 1 ms)
  status BIN PLAYPEN N RUNS       `status` timings and how many tasks it creates
                                  (call it while all N services run)
  templates BIN PLAYPEN RUNS      start time of a service with 5 templates vs. without
  kill-leftovers PLAYPEN          SIGKILL bench processes still running in PLAYPEN;
                                  prints how many it killed
  report RESULTS.jsonl GRACE_MS   print the table for the collected results

Only the standard library is used.
"""

import errno
import json
import os
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

POLL_INTERVAL = 0.001  # seconds between two looks at /proc while waiting for processes
RUN_PREFIX = "bench-"  # every bench service has service_run_name=bench-…


def now():
    """Seconds on CLOCK_MONOTONIC, the clock of the kernel's process-event timestamps."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def ms(seconds):
    return None if seconds is None else round(seconds * 1000.0, 2)


def next_pid():
    """The most recently assigned PID (last field of /proc/loadavg).

    Every task the kernel creates (process or thread) takes the next PID, so the
    difference between two readings counts the tasks created in between, by anyone.
    """
    with open("/proc/loadavg") as f:
        return int(f.read().split()[-1])


def argv0(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return raw.split(b"\0", 1)[0].decode(errors="replace")


def exited(pid):
    """True when `pid` is gone or a zombie (it has exited, only the reaping is left)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2:][:1] in ("Z", "X")


def cpu_busy(interval=0.2):
    """Fraction of all CPUs' time spent busy over `interval` seconds (/proc/stat)."""
    def sample():
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]  # user … steal
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait
    total0, idle0 = sample()
    time.sleep(interval)
    total1, idle1 = sample()
    return 1.0 - (idle1 - idle0) / max(total1 - total0, 1)


def machine_cpu():
    """Seconds of CPU time the whole machine has spent busy so far (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]  # user … steal
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu():
    """CPU seconds used by the bench and every descendant it has waited for (servicectl
    and the sh it runs)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def process_cpu(pids):
    """CPU seconds used so far by these processes (/proc/PID/schedstat, in ns)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e9


def wait_quiet(limit=20.0, threshold=0.15):
    """Wait (up to `limit` s) until other work on the machine leaves the CPUs idle, so
    that measurements are not someone else's compile. Returns the busy fraction seen
    last (above `threshold` means the measurement ran on a busy machine)."""
    give_up = now() + limit
    busy = cpu_busy()
    while busy > threshold and now() < give_up:
        busy = cpu_busy(0.5)
    return busy


def proc_pids():
    return {int(p) for p in os.listdir("/proc") if p.isdigit()}


class ProcEvents:
    """The kernel's process events (netlink proc connector): every exec and exit on the
    machine, each with the kernel's CLOCK_MONOTONIC timestamp. Nothing is polled, so
    the bench takes no CPU away from servicectl while it waits. Needs CAP_NET_ADMIN;
    the constructor raises OSError where it is not available."""

    EXEC, EXIT = 0x00000002, 0x80000000
    _HEADER = 16 + 20  # nlmsghdr + cn_msg

    def __init__(self):
        if os.environ.get("BENCH_WATCH") == "poll":
            raise OSError("BENCH_WATCH=poll")
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 11)  # NETLINK_CONNECTOR
        try:
            # Room for bursts of events: a full buffer drops events (ENOBUFS).
            self.sock.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE
        except OSError:
            pass
        self.sock.bind((0, 1))  # group CN_IDX_PROC
        listen = struct.pack("=I", 1)  # PROC_CN_MCAST_LISTEN
        cn_msg = struct.pack("=IIIIHH", 1, 1, 0, 0, len(listen), 0) + listen  # CN_IDX_PROC, CN_VAL_PROC
        self.sock.send(struct.pack("=IHHII", 16 + len(cn_msg), 3, 0, 0, 0) + cn_msg)  # NLMSG_DONE
        self.lost = False

    def next(self, timeout):
        """(kind, tgid, seconds) of the next exec or exit, None on timeout."""
        deadline = now() + timeout
        while True:
            left = deadline - now()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                return None
            try:
                data = self.sock.recv(65536)
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    self.lost = True
                    continue
                raise
            if len(data) < self._HEADER + 24:
                continue
            what, _cpu, ts = struct.unpack_from("=IIQ", data, self._HEADER)
            if what in (self.EXEC, self.EXIT):
                pid, tgid = struct.unpack_from("=ii", data, self._HEADER + 16)
                if pid == tgid:  # the process, not one of its threads
                    return what, tgid, ts / 1e9

    def close(self):
        self.sock.close()


def proc_events():
    try:
        return ProcEvents()
    except OSError:
        return None


class Launched:
    """A command started now, with the exact moment it returned recorded by a thread
    blocked in waitpid (no polling error on the return time)."""

    def __init__(self, argv, out_path):
        self.out = open(out_path, "wb")
        self.t0 = now()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.out, stderr=subprocess.STDOUT)
        self.returned_at = None
        self.done = threading.Event()
        threading.Thread(target=self._wait, daemon=True).start()

    def _wait(self):
        self.proc.wait()
        self.returned_at = now()
        self.done.set()

    def finish(self, timeout):
        if not self.done.wait(timeout):
            self.proc.kill()
            self.done.wait()
        self.out.close()
        return self.proc.returncode, self.returned_at - self.t0


def servicectl(bin_path, playpen, *args):
    return [bin_path, "--playpen", playpen, *args]


def tail(path, lines=8):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:]).rstrip()
    except OSError:
        return ""


# --------------------------------------------------------------------------- round

def measure_start(bin_path, playpen, n, scratch):
    """Launch `start`; record when each bench-sK process has exec'd (is alive)."""
    wanted = {f"{RUN_PREFIX}s{i}" for i in range(1, n + 1)}
    alive_at = {}  # run name -> seconds after launch
    pids = {}  # run name -> pid
    limit = max(60.0, n * 0.5)

    def seen(pid, t):
        name = argv0(pid)
        if name in wanted and name not in alive_at:
            alive_at[name] = t
            pids[name] = pid
            return True
        return False

    events = proc_events()
    known = proc_pids()
    unresolved = set()  # polling: new PIDs that may still exec a wanted name
    pid_before = next_pid()
    run = Launched(servicectl(bin_path, playpen, "start"), os.path.join(scratch, "start.out"))
    give_up = run.t0 + limit
    while len(alive_at) < n and now() < give_up:
        if run.done.is_set() and now() > run.returned_at + 2.0:
            break  # start returned: what is missing now will not appear
        if events and not events.lost:
            event = events.next(0.05)
            if event and event[0] == ProcEvents.EXEC:
                seen(event[1], event[2] - run.t0)
            continue
        # Fallback: look at /proc every millisecond.
        t = now() - run.t0
        current = proc_pids()
        unresolved = (unresolved | (current - known)) & current
        known |= current
        for pid in list(unresolved):
            if seen(pid, t):
                unresolved.discard(pid)
        time.sleep(POLL_INTERVAL)
    rc, returned = run.finish(timeout=limit)
    pid_after = next_pid()
    watch = "proc connector" if events and not events.lost else "/proc polled every 1 ms"
    if events:
        events.close()
    times = sorted(alive_at.values())
    return {
        "start_rc": rc,
        "start_return_ms": ms(returned),
        "alive_count": len(alive_at),
        "alive_first_ms": ms(times[0]) if times else None,
        "alive_median_ms": ms(statistics.median(times)) if times else None,
        "alive_all_ms": ms(times[-1]) if len(times) == n else None,
        # Tasks (processes and threads) the kernel created during start, minus the
        # bench's own two (the launched process and its waiter thread).
        "start_tasks": pid_after - pid_before - 2,
        "start_output_tail": tail(run.out.name) if rc != 0 or len(times) < n else "",
        "start_watch": watch,
    }, pids


def measure_stop(bin_path, playpen, pids, scratch):
    """Launch `stop`; record when each process has exited."""
    by_pid = {pid: name for name, pid in pids.items()}
    gone_at = {}
    events = proc_events()
    pidfds = {}
    if not events:
        try:
            pidfds = {os.pidfd_open(pid): name for name, pid in pids.items()}
        except (OSError, AttributeError):
            for fd in pidfds:
                os.close(fd)
            pidfds = None
    run = Launched(servicectl(bin_path, playpen, "stop"), os.path.join(scratch, "stop.out"))
    give_up = run.t0 + 60.0
    poller = None
    if pidfds:
        poller = select.poll()
        for fd in pidfds:
            poller.register(fd, select.POLLIN)
    while len(gone_at) < len(pids) and now() < give_up:
        if run.done.is_set() and now() > run.returned_at + 2.0:
            break
        if events and not events.lost:
            # Kernel timestamps of each exit: exact, and nothing is polled.
            event = events.next(0.05)
            if event and event[0] == ProcEvents.EXIT and event[1] in by_pid:
                gone_at[by_pid[event[1]]] = event[2] - run.t0
        elif poller:
            # pidfds become readable the moment the process exits.
            for fd, _ in poller.poll(50):
                gone_at[pidfds[fd]] = now() - run.t0
                poller.unregister(fd)
        else:
            t = now() - run.t0
            for name, pid in pids.items():
                if name not in gone_at and exited(pid):
                    gone_at[name] = t
            time.sleep(POLL_INTERVAL)
    rc, returned = run.finish(timeout=60.0)
    if events:
        watch = "proc connector" if not events.lost else "proc connector, events lost"
        events.close()
    else:
        watch = "pidfd" if pidfds else "/proc polled every 1 ms"
    for fd in pidfds or ():
        os.close(fd)
    times = sorted(gone_at.values())
    still_alive = [name for name, pid in pids.items() if not exited(pid)]
    return {
        "stop_rc": rc,
        "stop_return_ms": ms(returned),
        "gone_count": len(pids) - len(still_alive),
        "gone_all_ms": ms(times[-1]) if len(times) == len(pids) and times else None,
        "gone_first_ms": ms(times[0]) if times else None,
        "stop_output_tail": tail(run.out.name) if rc != 0 or still_alive else "",
        "stop_watch": watch,
    }


def cmd_round(bin_path, playpen, n):
    n = int(n)
    busy = wait_quiet()
    # CPU accounting, to tell when other work ran during the measurement: what the
    # machine spent minus what the bench, servicectl and the services spent.
    machine0, own0, t0 = machine_cpu(), own_cpu(), now()
    with tempfile.TemporaryDirectory(prefix="bench-out-") as scratch:
        result, pids = measure_start(bin_path, playpen, n, scratch)
        services_cpu = process_cpu(pids.values())
        result.update(measure_stop(bin_path, playpen, pids, scratch))
    machine, own, wall = machine_cpu() - machine0, own_cpu() - own0, now() - t0
    foreign = max(machine - own - services_cpu, 0.0)
    result["n"] = n
    result["busy_before_pct"] = round(busy * 100)
    result["cpu_servicectl_ms"] = ms(own)  # includes the bench's own small share
    result["cpu_other_pct"] = round(100 * foreign / (wall * os.cpu_count()))
    print(json.dumps(result))


# --------------------------------------------------------------------------- status

def timed_run(argv):
    t0 = now()
    rc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    return now() - t0, rc


def strace_counts(argv):
    """Processes and threads created by `argv`, from strace (None without strace)."""
    strace = shutil.which("strace")
    if not strace:
        return None
    with tempfile.NamedTemporaryFile(prefix="bench-strace-", mode="r") as log:
        subprocess.run(
            [strace, "-f", "-qq", "-o", log.name, "-e", "trace=clone,clone3,fork,vfork,execve,execveat", *argv],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        lines = log.read().splitlines()
    creations = [l for l in lines if re.search(r"\b(clone3?|v?fork)\(", l) and "resumed>" not in l]
    threads = [l for l in creations if "CLONE_THREAD" in l]
    execs = [l for l in lines if re.search(r"\bexecve(at)?\(", l)]
    return {
        "processes": len(creations) - len(threads),
        "threads": len(threads),
        "execs_after_own": max(len(execs) - 1, 0),  # the first execve is servicectl itself
    }


def cmd_status(bin_path, playpen, n, runs):
    n, runs = int(n), int(runs)
    busy = wait_quiet()
    argv = servicectl(bin_path, playpen, "status")
    timed_run(argv)  # warm the page cache; not counted
    times, rcs = [], set()
    for _ in range(runs):
        t, rc = timed_run(argv)
        times.append(t)
        rcs.add(rc)
    baseline = [timed_run(["/bin/true"])[0] for _ in range(runs)]
    # Tasks created by one status run: next PID after - before - 1 (the launched
    # process itself). Anything else starting on the machine meanwhile inflates the
    # figure, so take the smallest of a few tries.
    spawned = []
    for _ in range(5):
        before = next_pid()
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        spawned.append(next_pid() - before - 1)
    result = {
        "n": n,
        "status_runs": runs,
        "busy_before_pct": round(busy * 100),
        "status_rcs": sorted(rcs),
        "status_median_ms": ms(statistics.median(times)),
        "status_min_ms": ms(min(times)),
        "status_max_ms": ms(max(times)),
        "true_median_ms": ms(statistics.median(baseline)),
        "status_tasks_tries": spawned,
        "status_tasks": min(spawned),
        "status_strace": strace_counts(argv),
    }
    # The JSON form too, since scripts would use it.
    json_argv = servicectl(bin_path, playpen, "--json", "status")
    json_times = [timed_run(json_argv)[0] for _ in range(runs)]
    result["status_json_median_ms"] = ms(statistics.median(json_times))
    print(json.dumps(result))


# --------------------------------------------------------------------------- templates

PLACEHOLDER = re.compile(r"__[A-Za-z_][A-Za-z0-9_]*__")


def rendered_ok(playpen, count):
    """Did start render every template: present, 1,000 lines, no placeholder left?"""
    for i in range(1, count + 1):
        path = os.path.join(playpen, "var", "etc", f"t{i}.conf")
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            return f"{path} was not written"
        if text.count("\n") != 1000 or PLACEHOLDER.search(text) or playpen not in text:
            return f"{path} is not a complete rendering"
    return None


def cmd_templates(bin_path, playpen, runs):
    runs = int(runs)
    wait_quiet()
    with tempfile.TemporaryDirectory(prefix="bench-out-") as scratch:
        def start_stop(service):
            out = os.path.join(scratch, f"{service}.out")
            run = Launched(servicectl(bin_path, playpen, "start", service), out)
            rc, t = run.finish(timeout=60.0)
            text = tail(out)
            subprocess.run(servicectl(bin_path, playpen, "stop", service),
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return rc, t, text

        rc, _, text = start_stop("tpl")
        if rc != 0:
            print(json.dumps({"available": False, "why": f"start of the templated service failed (exit {rc}): {text}"}))
            return
        problem = rendered_ok(playpen, 5)
        if problem:
            print(json.dumps({"available": False, "why": f"start exits 0 but renders nothing ({problem})"}))
            return
        plain, templated = [], []
        for _ in range(runs):  # interleaved, so that drift hits both alike
            for service, bucket in (("plain", plain), ("tpl", templated)):
                rc, t, text = start_stop(service)
                if rc != 0:
                    print(json.dumps({"available": False, "why": f"start {service} failed (exit {rc}): {text}"}))
                    return
                bucket.append(t)
    print(json.dumps({
        "available": True,
        "runs": runs,
        "plain_median_ms": ms(statistics.median(plain)),
        "templated_median_ms": ms(statistics.median(templated)),
        "difference_ms": ms(statistics.median(templated) - statistics.median(plain)),
    }))


# --------------------------------------------------------------------------- cleanup

def cmd_kill_leftovers(playpen):
    """SIGKILL processes named bench-… whose working directory is this playpen (every
    service runs with cwd PLAYPEN_ROOT), so that nobody else's processes are touched."""
    root = os.path.realpath(playpen)
    killed = 0
    for pid in proc_pids():
        name = argv0(pid)
        if not name or not name.startswith(RUN_PREFIX):
            continue
        try:
            if os.path.realpath(os.readlink(f"/proc/{pid}/cwd")) != root:
                continue
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except OSError:
            pass
    print(killed)


# --------------------------------------------------------------------------- report

def fmt(value, unit=" ms"):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}{unit}"
    return f"{value}{unit}"


def cmd_report(results_path, grace_ms):
    grace_ms = float(grace_ms)
    rounds, status, templates = {}, {}, None
    with open(results_path) as f:
        for line in f:
            kind, data = line.split(" ", 1)
            data = json.loads(data)
            if kind == "round":
                rounds.setdefault(data["n"], []).append(data)
            elif kind == "status":
                status[data["n"]] = data
            elif kind == "templates":
                templates = data
    ns = sorted(set(rounds) | set(status))

    def med(n, key):
        values = [r[key] for r in rounds.get(n, []) if r.get(key) is not None]
        return statistics.median(values) if values else None

    def spread(n, key):
        values = [r[key] for r in rounds.get(n, []) if r.get(key) is not None]
        return f"{min(values):.0f}–{max(values):.0f}" if len(values) > 1 else ""

    def grace_excess(n):
        m = med(n, "start_return_ms")
        return None if m is None else m - grace_ms

    rows = [
        # label, per-N value, target (for N=100), runit (N=100)
        ("first process alive after start launched", lambda n: fmt(med(n, "alive_first_ms")), "", ""),
        ("all N processes alive after start launched", lambda n: fmt(med(n, "alive_all_ms")), "≤ 200 ms", "~180 ms"),
        ("start returns (exit 0)", lambda n: fmt(med(n, "start_return_ms")), f"≤ {grace_ms + 150:.0f} ms", ""),
        ("  = grace period +", lambda n: fmt(grace_excess(n)), "≤ 150 ms", ""),
        ("tasks created by start (procs+threads)", lambda n: fmt(med(n, "start_tasks"), ""), "", ""),
        ("status, median of runs", lambda n: fmt(status.get(n, {}).get("status_median_ms")), "≤ 3 ms", "~0.8 ms"),
        ("status, min", lambda n: fmt(status.get(n, {}).get("status_min_ms")), "", ""),
        ("status --json, median", lambda n: fmt(status.get(n, {}).get("status_json_median_ms")), "", ""),
        ("tasks created by status", lambda n: fmt(status.get(n, {}).get("status_tasks"), ""), "0", "0"),
        ("all N processes gone after stop launched", lambda n: fmt(med(n, "gone_all_ms")), "≤ 100 ms", "~100 ms"),
        ("stop returns (exit 0)", lambda n: fmt(med(n, "stop_return_ms")), "", ""),
    ]
    headers = ["metric"] + [f"N={n}" for n in ns] + ["target (N=100)", "runit (N=100)"]
    table = [[label] + [cell(n) for n in ns] + [target, runit] for label, cell, target, runit in rows]
    widths = [max(len(str(r[i])) for r in [headers] + table) for i in range(len(headers))]

    def line(cells):
        out = [str(cells[0]).ljust(widths[0])] + [str(c).rjust(widths[i + 1]) for i, c in enumerate(cells[1:])]
        return "  ".join(out).rstrip()

    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for row in table:
        print(line(row))
    some_rounds = next(iter(rounds.values()), [{}])
    print(f"\nFigures are medians over {len(some_rounds)} start/stop round(s) per N "
          f"(status: over {next(iter(status.values()), {}).get('status_runs', '?')} runs).\n"
          f"Processes watched by: {some_rounds[0].get('start_watch', '?')} (start), {some_rounds[0].get('stop_watch', '?')} (stop).")
    baseline = next(iter(status.values()), {}).get("true_median_ms")
    if baseline is not None:
        print(f"Launch overhead for comparison: /bin/true takes {baseline:.1f} ms measured the same way.")

    problems_busy = []
    print("\nSpread over rounds (min–max, ms), and how much of the CPUs other work took (before; during):")
    for n in ns:
        busy = [r.get("busy_before_pct", 0) for r in rounds.get(n, [])] + [status.get(n, {}).get("busy_before_pct", 0)]
        other = [r.get("cpu_other_pct", 0) for r in rounds.get(n, [])]
        if max(busy) > 15 or max(other, default=0) > 15:
            problems_busy.append(n)
        parts = [f"other work ≤ {max(busy)}%; ≤ {max(other, default=0)}%", f"alive {spread(n, 'alive_all_ms')}", f"start {spread(n, 'start_return_ms')}",
                 f"gone {spread(n, 'gone_all_ms')}", f"stop {spread(n, 'stop_return_ms')}"]
        print(f"  N={n}: " + ", ".join(parts))

    if problems_busy:
        print(f"  WARNING: for N={', '.join(map(str, problems_busy))} other work kept the CPUs busy"
              " while the bench ran (it waits up to 20 s for quiet before each measurement);"
              " those figures are inflated — run again on a quiet machine")

    print("\nStatus process count:")
    for n in ns:
        s = status.get(n)
        if not s:
            continue
        st = s.get("status_strace")
        via_strace = (f"; strace: {st['processes']} processes ({st['execs_after_own']} exec), {st['threads']} threads"
                      if st else "; strace not installed")
        print(f"  N={n}: next-PID delta − 1 over 5 tries: {s['status_tasks_tries']}{via_strace}")
    print("  (next-PID counts every task the kernel creates — threads too, and anything else"
          " started on the machine meanwhile; the smallest try is shown in the table)")

    problems = []
    for n in ns:
        for i, r in enumerate(rounds.get(n, []), 1):
            if r["start_rc"] != 0:
                problems.append(f"N={n} round {i}: start exited {r['start_rc']}:\n{r['start_output_tail']}")
            if r["alive_count"] != n:
                problems.append(f"N={n} round {i}: only {r['alive_count']} of {n} processes came up\n{r['start_output_tail']}")
            if r["stop_rc"] != 0:
                problems.append(f"N={n} round {i}: stop exited {r['stop_rc']}:\n{r['stop_output_tail']}")
            if r["gone_count"] != r["alive_count"]:
                problems.append(f"N={n} round {i}: only {r['gone_count']} of {r['alive_count']} processes went away")
        s = status.get(n)
        if s and s["status_rcs"] != [0]:
            problems.append(f"N={n}: status exit codes {s['status_rcs']} (expected only 0)")

    if 100 in ns:
        print("\nAgainst the targets (N=100):")
        checks = [
            ("all 100 processes alive after start is launched", med(100, "alive_all_ms"), 200.0, " ms"),
            (f"start returns (grace {grace_ms:.0f} ms + 150 ms)", med(100, "start_return_ms"), grace_ms + 150.0, " ms"),
            ("status of 100 running services (median)", status.get(100, {}).get("status_median_ms"), 3.0, " ms"),
            ("tasks created by status", status.get(100, {}).get("status_tasks"), 0, ""),
            ("all 100 processes gone after stop is launched", med(100, "gone_all_ms"), 100.0, " ms"),
        ]
        for label, value, target, unit in checks:
            if value is None:
                print(f"  {label}: not measured")
            elif value <= target:
                print(f"  OK      {label}: {fmt(value, unit)} ≤ {target:g}{unit}")
            else:
                rel = f", {value / target:.1f}× the target" if target else ""
                print(f"  MISSED  {label}: {fmt(value, unit)} > {target:g}{unit}"
                      f" — over by {fmt(value - target, unit)}{rel}")

    print("\nWhere start's time goes (medians; 'spawning' = first to last process alive):")
    for n in ns:
        first, last, ret = med(n, "alive_first_ms"), med(n, "alive_all_ms"), med(n, "start_return_ms")
        if None in (first, last, ret):
            continue
        spawning = last - first
        print(f"  N={n}: before the first process {first:.0f} ms ({first / n:.2f} ms/service: config evaluation,"
              f" checks) | spawning {spawning:.0f} ms ({spawning / max(n - 1, 1):.2f} ms/service)"
              f" | then {ret - last:.0f} ms until start returns (grace {grace_ms:.0f} ms)")
    print("Where stop's time goes:")
    for n in ns:
        first, last, ret = med(n, "gone_first_ms"), med(n, "gone_all_ms"), med(n, "stop_return_ms")
        if None in (first, last, ret):
            continue
        print(f"  N={n}: before the first exit {first:.0f} ms | exits spread over {last - first:.0f} ms"
              f" | returns {ret - last:.0f} ms after the last exit")

    print("\nTemplates (one service, 5 templates × 1,000 lines, every line with placeholders):")
    if templates is None:
        print("  not measured")
    elif not templates["available"]:
        print(f"  templates: not available — {templates['why']}")
    else:
        print(f"  start without templates {templates['plain_median_ms']:.1f} ms, with {templates['templated_median_ms']:.1f} ms"
              f" (medians of {templates['runs']}): rendering costs {templates['difference_ms']:+.1f} ms")

    if problems:
        print("\nPROBLEMS:")
        for p in problems:
            print("  " + p.replace("\n", "\n    "))
        sys.exit(1)


COMMANDS = {
    "round": cmd_round,
    "status": cmd_status,
    "templates": cmd_templates,
    "kill-leftovers": cmd_kill_leftovers,
    "report": cmd_report,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    try:
        COMMANDS[sys.argv[1]](*sys.argv[2:])
    except KeyboardInterrupt:
        sys.exit(130)
