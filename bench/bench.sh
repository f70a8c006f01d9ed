#!/usr/bin/env bash
# Benchmark servicectl start / status / stop with many services, and template rendering.
#
# Usage: bench/bench.sh [N ...]            (default: 10 100 500)
#
# For each N it makes a throw-away playpen with N project-local services
# (services/sN/config: service_program=sleep, service_flags=1000,
# service_run_name=bench-sN) and measures, from the launching process:
#   - time from launching `servicectl start` until all N processes run (have exec'd
#     with argv0 bench-sK), and until `start` returns (exit code must be 0);
#   - `servicectl status` (all services) wall time, and how many tasks it creates;
#   - time from launching `servicectl stop` until all N processes have exited, and
#     until `stop` returns.
# Then the start time of one service with 5 templates of 1,000 lines each versus the
# same service without templates.
#
# Processes are watched through the kernel's process events (netlink proc connector,
# needs root) with the kernel's own timestamps, so the bench does not steal CPU from
# servicectl while it waits; without it, /proc is polled every 1 ms (and exits are
# watched with pidfds). Before each measurement the bench waits (up to 20 s) for other
# work to leave the CPUs idle, and the report says when it did not.
#
# Environment:
#   SERVICECTL=PATH        binary to measure (default: build target/release/servicectl)
#   BENCH_ROUNDS=5         start/stop rounds per N (medians are reported)
#   BENCH_STATUS_RUNS=20   status runs per N
#   BENCH_TEMPLATE_RUNS=10 start runs per variant in the template measurement
#   BENCH_WATCH=poll       poll /proc every 1 ms instead of using process events
#
# The timing and process counting is done by bench/measure.py (python3, stdlib only).
# Everything is cleaned up on exit, also on failure or Ctrl-C: services are stopped,
# leftover bench processes of our playpens are killed, temporary directories removed.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
measure=(python3 "$here/measure.py")

rounds=${BENCH_ROUNDS:-5}
status_runs=${BENCH_STATUS_RUNS:-20}
template_runs=${BENCH_TEMPLATE_RUNS:-10}
case ${1:-} in -h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(10 100 500)

die() { echo "bench: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }

for n in "${sizes[@]}" "$rounds" "$status_runs" "$template_runs"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || die "not a positive whole number: $n (usage: bench/bench.sh [N ...])"
done

# Run in a neutral environment: no playpen, tag, role or port settings leak in.
unset PLAYPEN_ROOT PLAYPEN_TAG PLAYPEN_ROLE PLAYPEN_CLUSTER PORT_PREFIX SERVICECTL_CONFIG_TIMEOUT
export NO_COLOR=1

# ---------------------------------------------------------------------------- binary

if [[ -n ${SERVICECTL:-} ]]; then
    bin=$SERVICECTL
else
    bin=$repo/target/release/servicectl
    note "cargo build --release"
    if ! (cd "$repo" && cargo build --release --quiet 2>/dev/null); then
        # Others edit src/ while this runs: a half-edited tree must not stop the bench.
        [[ -x $bin ]] || die "cargo build --release failed and there is no $bin"
        note "WARNING: the build failed; measuring the existing $bin (it may be stale)"
    fi
fi
[[ -x $bin ]] || die "$bin is not executable"

# ---------------------------------------------------------------------------- cleanup

work=$(mktemp -d "${TMPDIR:-/tmp}/servicectl-bench.XXXXXX")
playpens=()

cleanup() {
    local rc=$? pp killed
    trap - EXIT INT TERM
    for pp in "${playpens[@]}"; do
        [[ -d $pp/var/run ]] || continue
        if ! timeout 60 "$bin" --playpen "$pp" stop >/dev/null 2>&1; then
            note "cleanup: servicectl stop failed in $pp; killing leftovers by run name"
        fi
        # Also catches processes spawned by an interrupted start before their pidfile.
        killed=$("${measure[@]}" kill-leftovers "$pp" 2>/dev/null || echo "?")
        [[ $killed == 0 ]] || note "cleanup: killed $killed leftover bench process(es) of $pp"
    done
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------- playpens

# new_playpen DIR SERVICES...: `servicectl init` DIR and list SERVICES in the role config.
new_playpen() {
    local dir=$1; shift
    playpens+=("$dir")
    "$bin" init "$dir" >/dev/null
    local role_config
    role_config=$dir/etc/roles/$(head -n1 "$dir/etc/role")/config
    printf 'playpen_services="%s"\n' "$*" >"$role_config"
}

# add_service DIR NAME [EXTRA-LINE...]: services/NAME/config running `sleep 1000` as bench-NAME.
add_service() {
    local dir=$1 name=$2; shift 2
    mkdir -p "$dir/services/$name"
    {
        echo "service_program=sleep"
        echo "service_flags=1000"
        echo "service_run_name=bench-$name"
        printf '%s\n' "$@"
    } >"$dir/services/$name/config"
}

grace_ms=$(sed -n 's/^ *pub const START_GRACE: Duration = Duration::from_millis(\([0-9]*\));.*/\1/p' "$repo/src/config/settings.rs")
[[ -n $grace_ms ]] || { grace_ms=250; note "START_GRACE not found in src/config/settings.rs; assuming 250 ms"; }

results=$work/results.jsonl
: >"$results"

echo "servicectl bench: $(cd "$repo" && git log -1 --format='%h %s' 2>/dev/null || echo 'no git')" \
     "$(cd "$repo" && [[ -n $(git status --porcelain -- src 2>/dev/null) ]] && echo '(src/ has uncommitted changes)')"
echo "binary: $bin (built $(date -r "$bin" '+%F %T'))"
echo "machine: $(nproc) CPU(s), $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg), $work on $(df -T "$work" | awk 'NR==2 { print $2 }')"
echo "start grace period (DEFAULT_START_GRACE): ${grace_ms} ms; rounds per N: $rounds"
echo

for n in "${sizes[@]}"; do
    pp=$work/pp-$n
    names=()
    for ((i = 1; i <= n; i++)); do names+=("s$i"); done
    new_playpen "$pp" "${names[@]}"
    for name in "${names[@]}"; do add_service "$pp" "$name"; done

    for ((r = 1; r <= rounds; r++)); do
        note "N=$n: start/stop round $r of $rounds"
        line=$("${measure[@]}" round "$bin" "$pp" "$n")
        echo "round $line" >>"$results"
    done

    note "N=$n: status ($status_runs runs) with all services running"
    "$bin" --playpen "$pp" start >/dev/null || die "N=$n: start before the status runs failed"
    line=$("${measure[@]}" status "$bin" "$pp" "$n" "$status_runs")
    echo "status $line" >>"$results"
    "$bin" --playpen "$pp" stop >/dev/null || die "N=$n: stop after the status runs failed"
done

# ---------------------------------------------------------------------------- templates

# templates: "tpl" renders 5 templates of 1,000 lines, "plain" is the same service without.
note "templates: ${template_runs} starts each of a service with and without 5 templates"
pp=$work/pp-templates
new_playpen "$pp" plain tpl
add_service "$pp" plain
add_service "$pp" tpl 'service_config_files="etc/t1.conf etc/t2.conf etc/t3.conf etc/t4.conf etc/t5.conf"'
for t in 1 2 3 4 5; do
    awk -v t="$t" 'BEGIN {
        for (i = 1; i <= 1000; i++)
            printf "t%d line %d: root=__PLAYPEN_ROOT__ var=__LOCAL_VAR__ pid=__SERVICE_PIDFILE__ name=__SERVICE_NAME__\n", t, i
    }' >"$pp/etc/t$t.conf"
done
line=$("${measure[@]}" templates "$bin" "$pp" "$template_runs")
echo "templates $line" >>"$results"

# ---------------------------------------------------------------------------- report

"${measure[@]}" report "$results" "$grace_ms"
