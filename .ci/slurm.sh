#!/usr/bin/env bash
# Sweeps under a real scheduler (issue 19): a single-node Slurm cluster on this
# machine runs a study as a job array with the sbatch script of docs/studies.md,
# a dependent job merges the shards, and the merge must be byte-identical to an
# unsharded run. Also parses the Kubernetes Indexed Job manifest of
# docs/studies.md with a YAML parser.
#
# Run as root on Debian 12: installs slurm-wlm and munge from Debian if missing,
# starts munged, slurmctld and slurmd (own config, sockets, ports and state in a
# temp folder) and stops each by PID at the end, also on failure. If a daemon
# cannot start, prints why (its log) and fails; never skips. Re-runnable.
#
# Environment (for testing the script itself):
#   SMARTPRO_SLURM_CONF_EXTRA  lines appended to slurm.conf (e.g. a broken key)
#   SMARTPRO_SLURM_TIMEOUT     seconds to wait for the jobs (default 120)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
START_S=$SECONDS

say() { printf 'slurm: %s\n' "$*"; }
fail() { printf 'slurm: FAILED: %s\n' "$*" >&2; exit 1; }

STUDY=$ROOT/scenarios/whatif/48v-installation-mc.toml
DOC=$ROOT/docs/studies.md
OUT=$ROOT/target/ci-slurm
JOB_TIMEOUT_S=${SMARTPRO_SLURM_TIMEOUT:-120}

[ "$(id -u)" -eq 0 ] || fail "must run as root (installs packages, runs the Slurm daemons)"

# --- packages -----------------------------------------------------------------------------
apt_install() { # package…
  if ! apt-cache show "$@" >/dev/null 2>&1; then
    say "apt-get update"
    apt-get update -qq
  fi
  # No service may start from the packages' maintainer scripts: this script starts
  # its own daemons. Only add a policy if there is none (containers often have one).
  local policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
  fi
  say "installing $* (Debian)"
  local rc=0 log
  log=$(mktemp)
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >"$log" 2>&1 || rc=$?
  [ -z "$policy" ] || rm -f "$policy"
  [ "$rc" -eq 0 ] || { cat "$log" >&2; rm -f "$log"; fail "apt-get install $* exited with $rc (its output above)"; }
  rm -f "$log"
}

for cmd in slurmctld slurmd sbatch scontrol sinfo munged munge; do
  command -v "$cmd" >/dev/null || { apt_install slurm-wlm munge; break; }
done

# A Python that has the yaml module: the one on PATH, else Debian's with python3-yaml.
PY=""
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null && "$p" -c 'import yaml' 2>/dev/null; then PY=$p; break; fi
done
if [ -z "$PY" ]; then
  apt_install python3-yaml
  PY=/usr/bin/python3
  "$PY" -c 'import yaml' || fail "python3-yaml installed but $PY cannot import yaml"
fi
say "$(slurmctld -V), munge $(munged -V 2>&1 | awk '{print $2; exit}'), PyYAML $("$PY" -c 'import yaml; print(yaml.__version__)')"

# --- the binary ---------------------------------------------------------------------------
SIM=$ROOT/target/release/smartpro-sim
if command -v cargo >/dev/null; then
  cargo build --release --quiet --bin smartpro-sim # a no-op when it is up to date
fi
[ -x "$SIM" ] || fail "no $SIM (and no cargo to build it)"

# --- the docs: the sbatch script to submit, and the Kubernetes manifest ---------------------
rm -rf "$OUT"
mkdir -p "$OUT"
SHARDS=$("$PY" - "$DOC" "$OUT/sweep-array.sh" <<'EOF'
import re, sys, yaml
doc, script = sys.argv[1], sys.argv[2]
text = open(doc, encoding="utf-8").read()
blocks = re.findall(r"^```(\w*)\n(.*?)^```$", text, re.S | re.M)
def fail(msg):
    sys.exit(f"slurm: FAILED: {doc}: {msg}")
arrays = [b for lang, b in blocks if lang == "bash" and "#SBATCH --array=" in b]
if len(arrays) != 1:
    fail(f"expected one ```bash block with '#SBATCH --array=', found {len(arrays)}")
sb = arrays[0]
m = re.search(r"^#SBATCH --array=0-(\d+)$", sb, re.M)
if not m:
    fail("the sbatch script's array is not '#SBATCH --array=0-<N-1>'")
n = int(m.group(1)) + 1
if "--shard \"$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT\"" not in sb:
    fail("the sbatch script does not run --shard \"$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT\"")
open(script, "w", encoding="utf-8").write(sb)

jobs = [b for lang, b in blocks if lang == "yaml" and re.search(r"^kind: Job$", b, re.M)]
if len(jobs) != 1:
    fail(f"expected one ```yaml block with 'kind: Job', found {len(jobs)}")
try:
    job = yaml.safe_load(jobs[0])
except yaml.YAMLError as e:
    fail(f"the Kubernetes Job manifest is not valid YAML: {e}")
def get(path):
    node = job
    for key in path.split("."):
        if isinstance(node, list):
            node = node[int(key)]
        elif isinstance(node, dict) and key in node:
            node = node[key]
        else:
            fail(f"the Kubernetes Job manifest has no {path}")
    return node
checks = {"apiVersion": "batch/v1", "kind": "Job", "spec.completionMode": "Indexed",
          "spec.template.spec.restartPolicy": "Never"}
for path, want in checks.items():
    if get(path) != want:
        fail(f"the Kubernetes Job manifest's {path} is {get(path)!r}, not {want!r}")
containers = get("spec.template.spec.containers")
if len(containers) != 1:
    fail(f"the Kubernetes Job manifest has {len(containers)} containers, not 1")
cmd = " ".join(containers[0].get("command", []) + containers[0].get("args", []))
m = re.search(r"smartpro-sim sweep \S+ .*--shard \$JOB_COMPLETION_INDEX/(\d+)\b", cmd)
if not m:
    fail(f"the Kubernetes Job's command does not run 'smartpro-sim sweep … --shard $JOB_COMPLETION_INDEX/N': {cmd}")
k8s_n = int(m.group(1))
completions = get("spec.completions")
if completions != k8s_n:
    fail(f"the Kubernetes Job's completions ({completions}) differ from its --shard …/{k8s_n}")
if get("spec.parallelism") > completions:
    fail("the Kubernetes Job's parallelism exceeds its completions")
print(f"slurm: ok  {doc}: Kubernetes Job parses as YAML: kind Job, completionMode Indexed, "
      f"completions {completions} = --shard $JOB_COMPLETION_INDEX/{k8s_n}", file=sys.stderr)
print(f"slurm: ok  {doc}: sbatch script extracted, --array=0-{n - 1}", file=sys.stderr)
print(n)
EOF
)
[ "$SHARDS" -ge 2 ] || fail "the sbatch script's array has $SHARDS task(s); a test needs at least 2"

# --- the cluster --------------------------------------------------------------------------
W=$(mktemp -d /tmp/smartpro-slurm.XXXXXX)
chmod 755 "$W" # munged wants its socket reachable by every user
mkdir -p "$W/munge" "$W/state" "$W/spool" "$W/log"
MUNGED="" SLURMCTLD="" SLURMD=""
KEEP_W=1
stop() { # name pid
  local name=$1 pid=$2
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || { say "stopped $name (pid $pid)"; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  say "killed $name (pid $pid): it did not stop within 10 s of SIGTERM"
}
# slurmstepd processes of this cluster (slurmd's children inherit SLURM_CONF); none should
# outlive it: wait for them briefly, then end them by PID.
our_steps() {
  local pid
  for pid in $(pgrep -x slurmstepd || true); do
    { tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null | grep -qxF "SLURM_CONF=$W/slurm.conf" && echo "$pid"
  done
  return 0
}
stop_steps() {
  local pid
  # Finished steps stay zombies until init reaps them (an environ no longer tells whose):
  # give them a moment too, so that the machine is clean when the script returns.
  for _ in $(seq 1 50); do
    [ -n "$(our_steps)" ] || pgrep -r Z -x slurmstepd >/dev/null || return 0
    sleep 0.1
  done
  for pid in $(our_steps); do stop slurmstepd "$pid"; done
}
cleanup() {
  local rc=$?
  set +e
  if [ -n "$SLURMCTLD" ] && kill -0 "$SLURMCTLD" 2>/dev/null; then
    # Jobs still queued or running (a timeout) must not outlive the cluster.
    scancel --quiet --user=root 2>/dev/null
  fi
  stop slurmd "$SLURMD"
  stop_steps
  stop slurmctld "$SLURMCTLD"
  stop munged "$MUNGED"
  if [ "$rc" -eq 0 ] && [ "$KEEP_W" -eq 0 ]; then
    rm -rf "$W"
  else
    say "daemons' config, state and logs kept in $W"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Print a daemon's log and fail.
daemon_failed() { # name why log…
  local name=$1 why=$2
  shift 2
  {
    printf 'slurm: FAILED: %s %s. Its log:\n' "$name" "$why"
    for f in "$@"; do
      [ -s "$f" ] && { printf -- '--- %s (last 40 lines)\n' "$f"; tail -n 40 "$f"; }
    done
  } >&2
  exit 1
}

# munged with its own socket, so it can neither clash with nor use a system munged.
if [ ! -s /etc/munge/munge.key ]; then
  say "creating /etc/munge/munge.key"
  mkdir -p /etc/munge
  if command -v mungekey >/dev/null; then
    mungekey --create --keyfile=/etc/munge/munge.key
  else
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown munge:munge /etc/munge/munge.key 2>/dev/null || true
  chmod 400 /etc/munge/munge.key
fi
install -m 400 /etc/munge/munge.key "$W/munge/munge.key" # owned by root, who runs munged here
SOCKET=$W/munge/munge.socket
munged --foreground --key-file="$W/munge/munge.key" --socket="$SOCKET" \
  --pid-file="$W/munge/munged.pid" --log-file="$W/log/munged.log" --seed-file="$W/munge/munged.seed" \
  >"$W/log/munged.out" 2>&1 &
MUNGED=$!
for _ in $(seq 1 50); do
  [ -S "$SOCKET" ] && break
  kill -0 "$MUNGED" 2>/dev/null || daemon_failed munged "exited at start" "$W/log/munged.out" "$W/log/munged.log"
  sleep 0.1
done
[ -S "$SOCKET" ] || daemon_failed munged "made no socket within 5 s" "$W/log/munged.out" "$W/log/munged.log"
munge --socket="$SOCKET" -n | unmunge --socket="$SOCKET" >/dev/null \
  || daemon_failed munged "cannot encode and decode a credential" "$W/log/munged.log"
say "munged (pid $MUNGED) on $SOCKET"

HOST=$(hostname -s)
CPUS=$(($(nproc) < 2 ? $(nproc) : 2))
MEM_MB=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
[ -n "$MEM_MB" ] || MEM_MB=$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
CTLD_PORT=$(free_port)
SLURMD_PORT=$(free_port)
[ "$CTLD_PORT" != "$SLURMD_PORT" ] || SLURMD_PORT=$(free_port)
export SLURM_CONF=$W/slurm.conf
cat >"$SLURM_CONF" <<EOF
# Written by .ci/slurm.sh: a one-node cluster on localhost for the sweep test.
ClusterName=smartpro-ci
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$SOCKET
CredType=cred/munge
StateSaveLocation=$W/state
SlurmdSpoolDir=$W/spool
SlurmctldPidFile=$W/slurmctld.pid
SlurmdPidFile=$W/slurmd.pid
SlurmctldLogFile=$W/log/slurmctld.log
SlurmdLogFile=$W/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups: a container has no systemd to delegate them.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MinJobAge=600
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=ci Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
${SMARTPRO_SLURM_CONF_EXTRA:-}
EOF
[ -z "${SMARTPRO_SLURM_CONF_EXTRA:-}" ] || say "slurm.conf extra lines (SMARTPRO_SLURM_CONF_EXTRA): $SMARTPRO_SLURM_CONF_EXTRA"

slurmctld -D -i -f "$SLURM_CONF" >"$W/log/slurmctld.out" 2>&1 &
SLURMCTLD=$!
for i in $(seq 1 300); do
  kill -0 "$SLURMCTLD" 2>/dev/null || daemon_failed slurmctld "exited at start" "$W/log/slurmctld.out" "$W/log/slurmctld.log"
  scontrol ping 2>/dev/null | grep -q 'is UP' && break
  [ "$i" -lt 300 ] || daemon_failed slurmctld "does not answer 'scontrol ping' after 30 s" \
    "$W/log/slurmctld.out" "$W/log/slurmctld.log"
  sleep 0.1
done
say "slurmctld (pid $SLURMCTLD) on 127.0.0.1:$CTLD_PORT"

slurmd -D -f "$SLURM_CONF" -N "$HOST" >"$W/log/slurmd.out" 2>&1 &
SLURMD=$!
state=""
for i in $(seq 1 300); do
  kill -0 "$SLURMD" 2>/dev/null || daemon_failed slurmd "exited at start" "$W/log/slurmd.out" "$W/log/slurmd.log"
  state=$(sinfo -h -N -n "$HOST" -o %T 2>/dev/null || true)
  case "$state" in
    idle) break ;;
    *drain* | *down* | *fail* | *inval*)
      daemon_failed slurmd "registered but node $HOST is '$state' ($(sinfo -h -N -n "$HOST" -o %E))" \
        "$W/log/slurmd.out" "$W/log/slurmd.log" "$W/log/slurmctld.log" ;;
  esac
  [ "$i" -lt 300 ] || daemon_failed slurmd "did not bring node $HOST to idle in 30 s (state '$state')" \
    "$W/log/slurmd.out" "$W/log/slurmd.log" "$W/log/slurmctld.log"
  sleep 0.1
done
say "slurmd (pid $SLURMD) on 127.0.0.1:$SLURMD_PORT; node $HOST idle ($CPUS CPUs, ${MEM_MB} MB)"

# --- the study: the docs' sbatch script as an array, then the merge as a dependent job --------
mkdir -p "$OUT/jobs"
export PATH=$ROOT/target/release:$PATH # sbatch passes the environment on: smartpro-sim for the tasks
cd "$OUT/jobs"
ARRAY=$(sbatch --parsable ../sweep-array.sh "$STUDY" "$OUT/shards")
ARRAY=${ARRAY%%;*}
MERGE=$(sbatch --parsable --dependency="afterany:$ARRAY" --job-name=smartpro-merge --output=%x-%j.log \
  --wrap "smartpro-sim merge $OUT/shards/* --out $OUT/merged")
MERGE=${MERGE%%;*}
cd "$ROOT"
say "submitted array job $ARRAY (sweep-array.sh from $(basename "$DOC"), $SHARDS tasks) and merge job $MERGE (afterany:$ARRAY)"

# Every job record (an array task, or the array before it is split) in a terminal state.
finished() { # jobid
  local states
  states=$(scontrol show job -o "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | sort -u) || return 1
  [ -n "$states" ] || return 1
  ! grep -qvE 'JobState=(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED)$' <<<"$states"
}
report_jobs() {
  printf -- '--- scontrol show job %s %s\n' "$ARRAY" "$MERGE"
  scontrol show job "$ARRAY" 2>&1
  scontrol show job "$MERGE" 2>&1
  for f in "$OUT"/jobs/*.log; do
    [ -e "$f" ] && { printf -- '--- %s (last 20 lines)\n' "$f"; tail -n 20 "$f"; }
  done
  printf -- '--- %s (last 20 lines)\n' "$W/log/slurmctld.log"
  tail -n 20 "$W/log/slurmctld.log"
  printf -- '--- %s (last 20 lines)\n' "$W/log/slurmd.log"
  tail -n 20 "$W/log/slurmd.log"
}
t0=$SECONDS
until finished "$ARRAY" && finished "$MERGE"; do
  if [ $((SECONDS - t0)) -ge "$JOB_TIMEOUT_S" ]; then
    report_jobs >&2
    fail "jobs $ARRAY (array) and $MERGE (merge) not finished after $JOB_TIMEOUT_S s (SMARTPRO_SLURM_TIMEOUT); their state and logs above"
  fi
  kill -0 "$SLURMD" 2>/dev/null || { report_jobs >&2; fail "slurmd died while the jobs ran"; }
  # A task that cannot start (a plugin slurmd cannot load, say) drains the node: fail now, not at the timeout.
  state=$(sinfo -h -N -n "$HOST" -o %T 2>/dev/null || true)
  case "$state" in
    *drain* | *down* | *fail* | *inval*)
      report_jobs >&2
      fail "node $HOST went '$state' while the jobs ran ($(sinfo -h -N -n "$HOST" -o %E)); slurmd's log above" ;;
  esac
  kill -0 "$SLURMCTLD" 2>/dev/null || { report_jobs >&2; fail "slurmctld died while the jobs ran"; }
  sleep 0.5
done
say "jobs finished in $((SECONDS - t0)) s"

# Each array task: exit 0 (all its cases pass) or 1 (one fails a check), nothing else.
tasks=$(scontrol show job -o "$ARRAY" | sed -n 's/.*ArrayTaskId=\([0-9]*\) .*JobState=\([A-Z_]*\) .*ExitCode=\([0-9]*:[0-9]*\).*/\1 \2 \3/p' | sort -n)
[ "$(wc -l <<<"$tasks")" -eq "$SHARDS" ] || { report_jobs >&2; fail "expected $SHARDS array tasks, scontrol shows: $tasks"; }
while read -r k st code; do
  case "$st $code" in
    "COMPLETED 0:0" | "FAILED 1:0")
      if [ ! -s "$OUT/shards/$k/results.csv" ] || [ ! -s "$OUT/shards/$k/cases.jsonl" ]; then
        report_jobs >&2
        fail "array task $k ended $st, exit ${code%%:*}, but wrote no shard in $OUT/shards/$k"
      fi
      say "ok  array task $k: $st, exit ${code%%:*} ($(grep -c . "$OUT/shards/$k/results.csv") lines in shards/$k/results.csv)" ;;
    *) report_jobs >&2; fail "array task $k ended $st with exit code $code (want 0 or 1)" ;;
  esac
done <<<"$tasks"
merge_line=$(scontrol show job -o "$MERGE")
merge_code=$(sed -n 's/.*ExitCode=\([0-9]*\):.*/\1/p' <<<"$merge_line")
merge_state=$(sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' <<<"$merge_line")

# --- the same study unsharded, and the comparison ------------------------------------------
sweep_code=0
"$SIM" sweep "$STUDY" --out "$OUT/unsharded" >"$OUT/unsharded.log" 2>&1 || sweep_code=$?
case "$sweep_code" in 0 | 1) ;; *) cat "$OUT/unsharded.log" >&2; fail "the unsharded sweep exited $sweep_code" ;; esac
[ "$merge_code" = "$sweep_code" ] || {
  report_jobs >&2
  fail "merge job $MERGE ended $merge_state with exit $merge_code; the unsharded sweep exited $sweep_code"
}
say "ok  merge job $MERGE: $merge_state, exit $merge_code = the unsharded sweep's exit $sweep_code"
for f in results.csv summary.md junit.xml; do
  [ -s "$OUT/unsharded/$f" ] || fail "the unsharded run wrote no $f"
  cmp "$OUT/merged/$f" "$OUT/unsharded/$f" || fail "merged $f differs from the unsharded run's ($OUT/merged, $OUT/unsharded)"
  say "ok  merged $f is byte-identical to the unsharded run's ($(wc -c <"$OUT/merged/$f") bytes)"
done
# summary.json also records how the run went (wall time, threads, speed): equal apart from those.
"$PY" - "$OUT/merged/summary.json" "$OUT/unsharded/summary.json" <<'EOF'
import json, sys
run_keys = ("cases_per_s", "jobs", "wall_s")
a, b = (json.load(open(p, encoding="utf-8")) for p in sys.argv[1:])
for d in (a, b):
    for k in run_keys:
        d.pop(k, None)
if a != b:
    diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    sys.exit(f"slurm: FAILED: merged summary.json differs from the unsharded run's in {diff}")
print(f"slurm: ok  merged summary.json equals the unsharded run's apart from {', '.join(run_keys)}")
EOF
say "unsharded: $(grep -m 1 ' cases: ' "$OUT/unsharded.log")"
KEEP_W=0
say "passed in $((SECONDS - START_S)) s: $(basename "$STUDY") as a $SHARDS-task Slurm array + merge = one unsharded run"
