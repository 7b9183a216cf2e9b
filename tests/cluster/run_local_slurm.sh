#!/usr/bin/env bash
# Runs the workflow through a real, private, single-node SLURM on this machine:
#   munged + MariaDB (bound to 127.0.0.1) + slurmdbd + slurmctld + slurmd, started by hand,
#   then `snakemake --profile profiles/slurm` on the tiny config (default target `all`) in a
#   temporary copy of the working tree, then checks that every output exists and that the jobs
#   really ran as SLURM jobs (sacct lists them, named by rule; GPU rules got a GPU).
# Every daemon this script starts is stopped by its PID on exit, whatever happened.
#
# Needs root and, for packages that are missing, apt-get (Debian/Ubuntu). Exits 77 (skip)
# when it cannot run here (not root, no plugin, a SLURM or munge of the machine's own).
# Everything lives in a temporary directory (/tmp/divcoeff-slurm.*: configs, munge key, MariaDB
# data, spool, logs, the run), removed at the end unless --keep or a failure. Outside it, only
# while it runs: /etc/slurm/slurm.conf (a symlink to ours) and /run/munge (munged's socket).
# Time on a 2-core machine: about 3 minutes for the tiny study, plus ~10 s to install packages.
#
# Usage: tests/cluster/run_local_slurm.sh [--no-gpu] [--keep] [--configfile FILE] [-- TARGETS...]
#   --no-gpu      no fake GPUs: the GPU rules' gpu/cpus_per_gpu requests are dropped
#   --keep        keep the temporary directory (configs, daemon logs, the run) for inspection
#   --configfile  workflow config to run (default config/tiny/config.yaml)
#   TARGETS       snakemake targets (default: the workflow's default target, rule all)
# Environment: PYTHON (default .venv/bin/python), SLURM_TEST_TIMEOUT (seconds for the
# snakemake run, default 1200).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
CONFIGFILE=config/tiny/config.yaml
USE_GPU=1
KEEP=0
TARGETS=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --no-gpu) USE_GPU=0 ;;
        --keep) KEEP=1 ;;
        --configfile) CONFIGFILE=$2; shift ;;
        --) shift; TARGETS=("$@"); break ;;
        *) echo "unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
    esac
    shift
done

SKIP=77
say() { printf '[slurm-test %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
skip() { say "SKIP: $*"; exit $SKIP; }
die() { say "FAIL: $*"; exit 1; }

T_START=$(date +%s)
[[ $(id -u) -eq 0 ]] || skip "needs root (it installs packages and runs the SLURM daemons)"
"$PYTHON" -c 'import snakemake_executor_plugin_slurm' 2>/dev/null ||
    skip "snakemake-executor-plugin-slurm is not installed for $PYTHON (pip install -e '.[slurm]')"
# A SLURM or munge already running here would fight ours over ports and state.
for daemon in slurmctld slurmd slurmdbd munged; do
    if pids=$(pgrep -x "$daemon"); then
        skip "a $daemon is already running (pid $(echo $pids)); this test runs its own private one"
    fi
done

# The job step's inner `srun` cannot be pointed elsewhere (snakemake-executor-plugin-slurm-jobstep
# removes SLURM_CONF from its environment), so our slurm.conf must be the default one, as a
# symlink that is removed on exit. A SLURM configuration of the machine's own is left alone.
SYSTEM_CONF=/etc/slurm/slurm.conf
if [[ -e $SYSTEM_CONF || -L $SYSTEM_CONF ]] && [[ $(readlink "$SYSTEM_CONF") != /tmp/divcoeff-slurm.* ]]; then
    skip "$SYSTEM_CONF exists: this machine has a SLURM configuration of its own"
fi

# ---------------------------------------------------------------- packages
PACKAGES=(slurm-wlm slurmctld slurmd slurm-client slurmdbd munge mariadb-server mariadb-client)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
T_INSTALL=0
if [[ ${#missing[@]} -gt 0 ]]; then
    command -v apt-get >/dev/null || skip "packages ${missing[*]} missing and no apt-get to install them"
    say "installing ${missing[*]}"
    t0=$(date +%s)
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    # The package scripts do not start the services here (policy-rc.d); we start our own below.
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    T_INSTALL=$(($(date +%s) - t0))
    say "installed in ${T_INSTALL}s"
fi

# ---------------------------------------------------------------- private state
T_CLEAN=$(date +%s)
STATE=$(mktemp -d /tmp/divcoeff-slurm.XXXXXX)
chmod 755 "$STATE"  # the munge and mysql users must reach their folders
mkdir -p "$STATE"/{etc,log,run,spool/ctld,spool/d,munge,mysql,dev,work}
chown munge:munge "$STATE/munge"
chown mysql:mysql "$STATE/mysql"
export SLURM_CONF=$STATE/etc/slurm.conf  # clients, slurmdbd (slurmdbd.conf) and gres.conf follow it

declare -A PIDS=()
ORDER=()  # start order; stopped in reverse
start_bg() {  # start_bg NAME LOGFILE CMD...: a foreground daemon in the background; remember its PID
    local name=$1 log=$2
    shift 2
    "$@" >"$log" 2>&1 &
    PIDS[$name]=$!
    ORDER+=("$name")
}

stop_all() {
    local rc=$?
    set +e
    if [[ -n ${SNAKEMAKE_PID:-} ]] && kill -0 "$SNAKEMAKE_PID" 2>/dev/null; then
        say "stopping snakemake (pid $SNAKEMAKE_PID)"
        kill -TERM "$SNAKEMAKE_PID"  # timeout passes it on to snakemake
        for _ in $(seq 60); do
            kill -0 "$SNAKEMAKE_PID" 2>/dev/null || break
            sleep 0.5
        done
        kill -0 "$SNAKEMAKE_PID" 2>/dev/null && kill -KILL "$SNAKEMAKE_PID"
    fi
    if [[ -n ${PIDS[slurmctld]:-} ]] && kill -0 "${PIDS[slurmctld]}" 2>/dev/null; then
        [[ $rc -ne 0 ]] && { timeout 5 sinfo -R; timeout 5 squeue -l; } >&2 2>/dev/null
        # Jobs left behind by an interrupted run would keep their slurmstepd alive.
        timeout 5 scancel --full --quiet --user=root 2>/dev/null
        for _ in $(seq 20); do
            [[ -z $(timeout 5 squeue -h -o %i 2>/dev/null) ]] && break
            sleep 0.5
        done
    fi
    local i name pid
    for ((i = ${#ORDER[@]} - 1; i >= 0; i--)); do
        name=${ORDER[i]}
        pid=${PIDS[$name]}
        kill -0 "$pid" 2>/dev/null || continue
        kill -TERM "$pid"
        for _ in $(seq 60); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "$name (pid $pid) ignored SIGTERM for 30 s; killing it"
            kill -KILL "$pid"
        fi
        wait "$pid" 2>/dev/null
    done
    # Job steps are started by our slurmd (we skipped if another slurmd was running), so any
    # slurmstepd still here is ours: a job that outlived its cancellation.
    local steps
    if steps=$(pgrep -x slurmstepd); then
        say "slurmstepd still running after shutdown (pids $(echo $steps)); killing them"
        kill -KILL $steps
        [[ $rc -eq 0 ]] && rc=1
    fi
    if [[ $rc -ne 0 && $rc -ne $SKIP ]]; then
        for f in "$STATE"/log/*.log; do
            say "---- last lines of $f"
            tail -n 15 "$f" >&2
        done
    fi
    [[ ${MADE_RUN_MUNGE:-0} -eq 1 ]] && rm -rf /run/munge
    [[ $(readlink "$SYSTEM_CONF") == "$SLURM_CONF" ]] && rm -f "$SYSTEM_CONF"
    if [[ $KEEP -eq 1 || ($rc -ne 0 && $rc -ne $SKIP) ]]; then
        say "kept $STATE (configs, daemon logs, the run in work/)"
    else
        rm -rf "$STATE"
    fi
    say "all daemons stopped; exit $rc"
    exit $rc
}
trap stop_all EXIT
trap 'exit 130' INT TERM

free_port() { "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() {  # wait_for SECONDS WHAT CMD...: poll until CMD succeeds (give CMD its own timeout)
    local limit=$1 what=$2
    shift 2
    local deadline=$((SECONDS + limit))
    while ((SECONDS < deadline)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.25
    done
    die "$what not ready after ${limit}s"
}
alive() { kill -0 "${PIDS[$1]}" 2>/dev/null || die "$1 exited early (log in $STATE/log)"; }

HOST=$(hostname -s)
NCPU=$(nproc)
MEM_MB=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)  # a bit under the machine's
# SLURM 22.05's clients ignore AuthInfo=socket=..., so munged listens where they look.
MUNGE_SOCKET=/run/munge/munge.socket.2
DB_PORT=$(free_port) DBD_PORT=$(free_port) CTLD_PORT=$(free_port) SLURMD_PORT=$(free_port)
DB_PASS=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')

# ---------------------------------------------------------------- munge
if [[ ! -d /run/munge ]]; then
    install -d -o munge -g munge -m 755 /run/munge
    MADE_RUN_MUNGE=1
fi
mungekey --create --keyfile="$STATE/munge/munge.key" --force 2>/dev/null ||
    dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1024 count=1 status=none
chown munge:munge "$STATE/munge/munge.key"
chmod 600 "$STATE/munge/munge.key"
start_bg munged "$STATE/log/munged.out" setpriv --reuid=munge --regid=munge --init-groups -- \
    munged --foreground --key-file="$STATE/munge/munge.key" --socket="$MUNGE_SOCKET" \
    --pid-file="$STATE/munge/munged.pid" --seed-file="$STATE/munge/munged.seed"
wait_for 15 munged timeout 5 munge --socket="$MUNGE_SOCKET" -n
alive munged

# ---------------------------------------------------------------- MariaDB for slurmdbd
MYSQL_SOCKET=$STATE/mysql/mysqld.sock
mariadb-install-db --no-defaults --user=mysql --datadir="$STATE/mysql/data" --skip-test-db \
    --auth-root-authentication-method=socket >"$STATE/log/mariadb-install.log" 2>&1 ||
    die "mariadb-install-db failed (see $STATE/log/mariadb-install.log)"
start_bg mariadbd "$STATE/log/mariadb.log" mariadbd --no-defaults --user=mysql \
    --datadir="$STATE/mysql/data" --socket="$MYSQL_SOCKET" --pid-file="$STATE/mysql/mariadbd.pid" \
    --bind-address=127.0.0.1 --port="$DB_PORT" --skip-log-bin \
    --innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900
wait_for 60 MariaDB timeout 5 mariadb-admin --no-defaults --socket="$MYSQL_SOCKET" ping
alive mariadbd
mariadb --no-defaults --socket="$MYSQL_SOCKET" -u root <<SQL
CREATE DATABASE slurm_acct_db;
CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
SQL

# ---------------------------------------------------------------- configuration
GRES_NODE=""
if [[ $USE_GPU -eq 1 ]]; then
    # SLURM only schedules GPUs that are character devices; these are fake (NVIDIA's major 195)
    # and nothing opens them: the jobs just see CUDA_VISIBLE_DEVICES.
    if mknod "$STATE/dev/nvidia0" c 195 0 2>/dev/null && mknod "$STATE/dev/nvidia1" c 195 1 2>/dev/null; then
        GRES_NODE="Gres=gpu:fake:2"
        cat >"$STATE/etc/gres.conf" <<EOF
AutoDetect=off
NodeName=$HOST Name=gpu Type=fake File=$STATE/dev/nvidia[0-1]
EOF
    else
        say "mknod is not allowed here: running without fake GPUs (like --no-gpu)"
        USE_GPU=0
    fi
fi

cat >"$STATE/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
PidFile=$STATE/run/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
EOF
chmod 600 "$STATE/etc/slurmdbd.conf"  # slurmdbd refuses a readable password file

cat >"$STATE/etc/slurm.conf" <<EOF
# Single-node test cluster written by $0
ClusterName=divcoeff-test
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
# No cgroups in a container: track processes by parentage, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, a job that asks for no memory is given the whole node.
DefMemPerCPU=$((MEM_MB / NCPU / 2))
JobAcctGatherType=jobacct_gather/none
# sacct is how the executor plugin follows jobs; comments carry the rule names.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
AccountingStoreFlags=job_comment
AccountingStorageTRES=gres/gpu
JobCompType=jobcomp/none
${GRES_NODE:+GresTypes=gpu}
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$NCPU RealMemory=$MEM_MB $GRES_NODE State=UNKNOWN
PartitionName=main Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

mkdir -p "$(dirname "$SYSTEM_CONF")"
ln -sfn "$SLURM_CONF" "$SYSTEM_CONF"

# ---------------------------------------------------------------- SLURM daemons
start_bg slurmdbd "$STATE/log/slurmdbd.out" slurmdbd -D
wait_for 60 slurmdbd timeout 5 sacctmgr -n list cluster
alive slurmdbd
sacctmgr -i add cluster divcoeff-test >/dev/null
start_bg slurmctld "$STATE/log/slurmctld.out" slurmctld -D -c
wait_for 30 slurmctld timeout 5 scontrol ping
alive slurmctld
start_bg slurmd "$STATE/log/slurmd.out" slurmd -D -N "$HOST"
node_idle() { [[ $(timeout 5 sinfo -h -n "$HOST" -o %T) == idle ]]; }
wait_for 60 "node $HOST (sinfo -R says why)" node_idle
alive slurmd
say "SLURM is up: node $HOST, $NCPU CPUs, ${MEM_MB} MB, GPUs: $([[ $USE_GPU -eq 1 ]] && echo 2 fake || echo none)"

# ---------------------------------------------------------------- the run
# A copy of the working tree (tracked and new files, not results or the venv): the run leaves
# nothing in the repository.
WORK=$STATE/work
git -C "$REPO" ls-files -z --cached --others --exclude-standard |
    (cd "$REPO" && xargs -0 cp -P --parents -t "$WORK" 2>/dev/null) ||
    die "could not copy the working tree to $WORK"
# The profile as it is, with its per-job CPUs and memory capped to this one small node.
fit_args=(--nodes-cpus "$NCPU" --node-mem-mb "$MEM_MB")
[[ $USE_GPU -eq 1 ]] && fit_args+=(--gpus 2)
"$PYTHON" "$REPO/tests/cluster/fit_profile.py" "$REPO/profiles/slurm/config.yaml" \
    "$STATE/profile/config.yaml" "${fit_args[@]}"

cd "$WORK"
T_RUN=$(date +%s)
say "snakemake --profile profiles/slurm (fitted to this node) --workflow-profile none --configfile $CONFIGFILE"
# In the background so that a signal to this script is handled at once (bash defers traps while
# a foreground child runs); stop_all stops it and cancels whatever it left in the queue.
rc=0
timeout -k 60 "${SLURM_TEST_TIMEOUT:-1200}" \
    "$PYTHON" -m snakemake --profile "$STATE/profile" --workflow-profile none --configfile "$CONFIGFILE" \
    --slurm-init-seconds-before-status-checks 2 --slurm-keep-successful-logs \
    "${TARGETS[@]}" >"$STATE/log/snakemake-run.log" 2>&1 &
SNAKEMAKE_PID=$!
wait "$SNAKEMAKE_PID" || rc=$?
SNAKEMAKE_PID=
T_RUN=$(($(date +%s) - T_RUN))
if [[ $rc -ne 0 ]]; then
    tail -n 60 "$STATE/log/snakemake-run.log" >&2
    die "snakemake exited $rc after ${T_RUN}s (log: $STATE/log/snakemake-run.log)"
fi
say "snakemake finished in ${T_RUN}s"

# ---------------------------------------------------------------- checks
check_args=(--workdir "$WORK" --run-log "$STATE/log/snakemake-run.log" --configfile "$CONFIGFILE"
    --profile "$STATE/profile/config.yaml")
[[ $USE_GPU -eq 1 ]] && check_args+=(--gpu)
"$PYTHON" "$REPO/tests/cluster/check_slurm_run.py" "${check_args[@]}" "${TARGETS[@]}" ||
    die "the run's checks failed"

T_END=$(date +%s)
say "PASS: clean start to checked run in $((T_END - T_CLEAN))s (run ${T_RUN}s); package install ${T_INSTALL}s; total $((T_END - T_START))s"
