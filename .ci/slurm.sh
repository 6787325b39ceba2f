#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for tests and CI.
#
#   .ci/slurm.sh start    install slurm-wlm + munge if missing, start munged, slurmctld, slurmd;
#                         wait until the node is idle; print the SLURM_CONF to export
#   .ci/slurm.sh stop     cancel every job, stop the daemons this script started, leave nothing running
#   .ci/slurm.sh status   say whether it is up (exit 0) or not (exit 1), with sinfo/squeue when up
#
# Everything lives under $SLURM_TEST_DIR (default /tmp/slurm-test): slurm.conf, its own munge key
# and munge socket, state, spool, logs, pid files. Nothing global is configured: /etc/slurm and the
# system munged (/run/munge) are not used. All SLURM commands work with
#   export SLURM_CONF=$SLURM_TEST_DIR/etc/slurm.conf
#
# Settings (environment):
#   SLURM_TEST_DIR        folder for everything (default /tmp/slurm-test)
#   SLURM_TEST_CPUS       task slots on the node (default: logical CPUs, at least 2; more than the
#                         machine has is allowed, config_overrides)
#   SLURM_TEST_MEM_MB     RealMemory of the node in MB (default 4096)
#   SLURM_TEST_NODE       the node's name (default: hostname -s; localhost if that is no plain name)
#   SLURM_TEST_CTLD_PORT  slurmctld port (default 6817); slurmd uses SLURM_TEST_SLURMD_PORT (6818)
#   SLURM_TEST_TIMEOUT    seconds to wait for the node to be idle (default 60)
#   SLURM_TEST_CRED_EXPIRE  AuthInfo cred_expire: also the delay before a requeued job may start
#                         again (default 10; Slurm's own default is 120)
#   SLURM_TEST_ACCOUNTING=1  also job accounting, so that sacct works (submitit reads job states
#                         with sacct): installs mariadb-server and slurmdbd, runs a private
#                         mariadbd (127.0.0.1, port SLURM_TEST_MYSQL_PORT, default 6820) and
#                         slurmdbd (port SLURM_TEST_DBD_PORT, default 6819). Default 0: no sacct.
#                         stop and status find the accounting daemons whatever this is set to.
#
# No cgroups: proctrack/linuxproc, task/none (this runs in containers where cgroup control is
# unavailable). The daemons run as root; the script re-runs itself through sudo when not root.
set -euo pipefail

DIR=${SLURM_TEST_DIR:-/tmp/slurm-test}
CONF=$DIR/etc/slurm.conf
NODE=${SLURM_TEST_NODE:-$(hostname -s 2>/dev/null || true)}
# A node name must be a plain host name; fall back to localhost.
[[ $NODE =~ ^[A-Za-z0-9][A-Za-z0-9-]*$ ]] || NODE=localhost
NCPU=$(nproc 2>/dev/null || echo 2)
CPUS=${SLURM_TEST_CPUS:-$((NCPU < 2 ? 2 : NCPU))}
MEM=${SLURM_TEST_MEM_MB:-4096}
CTLD_PORT=${SLURM_TEST_CTLD_PORT:-6817}
SLURMD_PORT=${SLURM_TEST_SLURMD_PORT:-6818}
TIMEOUT=${SLURM_TEST_TIMEOUT:-60}
CRED_EXPIRE=${SLURM_TEST_CRED_EXPIRE:-10}
ACCOUNTING=${SLURM_TEST_ACCOUNTING:-0}
DBD_PORT=${SLURM_TEST_DBD_PORT:-6819}
MYSQL_PORT=${SLURM_TEST_MYSQL_PORT:-6820}
DAEMONS="munged slurmctld slurmd"
[ "$ACCOUNTING" = 1 ] && DAEMONS="munged mariadbd slurmdbd slurmctld slurmd"
MUNGE_SOCKET=$DIR/munge-run/munge.socket.2
SBIN=/usr/sbin

log() { echo "slurm.sh: $*" >&2; }
die() { log "$*"; exit 1; }

usage() {
  awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"
}

# ---- processes --------------------------------------------------------------------------------

pid_of() {  # pid_of NAME -> pid from $DIR/run/NAME.pid if that process is alive
  local f=$DIR/run/$1.pid pid
  [ -s "$f" ] || return 1
  pid=$(<"$f")
  # /proc rather than kill -0, which a user other than root may not do (status)
  [[ $pid =~ ^[0-9]+$ ]] && [ -d "/proc/$pid" ] || return 1
  echo "$pid"
}

stop_pids() {  # stop_pids NAME...: SIGTERM to all at once, wait up to 15 s, then SIGKILL
  local name pid i alive pids=()
  for name in "$@"; do
    if pid=$(pid_of "$name"); then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  for ((i = 0; i < 150; i++)); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      log "pid $pid did not stop on SIGTERM, killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  for name in "$@"; do rm -f "$DIR/run/$name.pid"; done
}

# Processes of this cluster that can outlive the daemons: slurmstepd (slurmd passes its environment,
# our SLURM_CONF, on to it) and job processes (the job environment holds SLURM_CONF and
# SLURM_JOB_ID). With proctrack/linuxproc a job's child whose parent died is reparented to init and
# escapes slurmstepd's kill. This process and its ancestors are never listed.
our_leftovers() {
  local p pid comm env keep=" " a=$$
  while [ -n "$a" ] && [ "$a" != 0 ] && [ "$a" != 1 ]; do
    keep+="$a "
    a=$(awk '{print $4}' "/proc/$a/stat" 2>/dev/null || true)
  done
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [[ $keep == *" $pid "* ]] && continue
    env=$(tr '\0' '\n' 2>/dev/null <"$p/environ") || continue
    grep -qxF "SLURM_CONF=$CONF" <<<"$env" || continue
    comm=$(cat "$p/comm" 2>/dev/null || true)
    if [ "$comm" = slurmstepd ] || grep -q '^SLURM_JOB_ID=' <<<"$env"; then
      echo "$pid"
    fi
  done
}

all_pids_alive() {
  local n
  for n in $DAEMONS; do pid_of "$n" >/dev/null || return 1; done
}

# ---- start ------------------------------------------------------------------------------------

install_packages() {
  local missing=0 b packages=(slurm-wlm munge)
  for b in $SBIN/slurmctld $SBIN/slurmd /usr/bin/sbatch /usr/bin/srun $SBIN/munged $SBIN/mungekey; do
    [ -x "$b" ] || missing=1
  done
  if [ "$ACCOUNTING" = 1 ]; then
    packages+=(mariadb-server slurmdbd)
    for b in $SBIN/slurmdbd $SBIN/mariadbd /usr/bin/mariadb-install-db /usr/bin/mariadb; do
      [ -x "$b" ] || missing=1
    done
  fi
  [ $missing = 0 ] && return 0
  log "installing ${packages[*]} (apt-get)"
  mkdir -p "$DIR/log"
  # No recommends: everything the cluster uses is in slurm-wlm-basic-plugins.
  if ! (export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq --no-install-recommends "${packages[@]}") >"$DIR/log/apt.log" 2>&1; then
    tail -20 "$DIR/log/apt.log" >&2
    die "apt-get install ${packages[*]} failed (log: $DIR/log/apt.log)"
  fi
}

start_munged() {
  pid_of munged >/dev/null && return 0
  # munged refuses group/world-writable folders on the key's and socket's paths; make ours 0755/0700.
  install -d -m 0700 "$DIR/munge"
  install -d -m 0755 "$DIR/munge-run"
  if [ ! -s "$DIR/munge/munge.key" ]; then
    mungekey --create --keyfile="$DIR/munge/munge.key" 2>/dev/null ||
      dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
  fi
  chmod 0400 "$DIR/munge/munge.key"
  rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
  # --force: munged checks every folder above its key, log and socket and refuses to start when
  # one is group- or world-writable without the sticky bit (say SLURM_TEST_DIR under a shared
  # folder); with --force it only warns. It is a throwaway test key.
  # --origin: the address put in credentials; munged looks up the host name otherwise, and warns
  # when it does not resolve.
  $SBIN/munged --force --num-threads=2 --origin=127.0.0.1 \
    --socket="$MUNGE_SOCKET" \
    --key-file="$DIR/munge/munge.key" \
    --pid-file="$DIR/run/munged.pid" \
    --log-file="$DIR/log/munged.log" \
    --seed-file="$DIR/munge/munged.seed" ||
    die "munged failed to start"
  local i
  for ((i = 0; i < 50; i++)); do
    [ -S "$MUNGE_SOCKET" ] && pid_of munged >/dev/null && return 0
    sleep 0.1
  done
  die "munged did not come up"
}

mysql() { mariadb --no-defaults -S "$DIR/run/mariadbd.sock" -u root "$@"; }

start_mariadbd() {  # a private database server for slurmdbd: 127.0.0.1:$MYSQL_PORT, socket in $DIR/run
  local pid deadline
  if [ ! -d "$DIR/mysql/mysql" ]; then
    rm -rf "$DIR/mysql"
    mariadb-install-db --no-defaults --datadir="$DIR/mysql" --user=root \
      --auth-root-authentication-method=normal --skip-test-db >"$DIR/log/mariadb-install-db.log" 2>&1 ||
      die "mariadb-install-db failed (log: $DIR/log/mariadb-install-db.log)"
  fi
  $SBIN/mariadbd --no-defaults --datadir="$DIR/mysql" --user=root --bind-address=127.0.0.1 \
    --port="$MYSQL_PORT" --socket="$DIR/run/mariadbd.sock" --pid-file="$DIR/run/mariadbd.pid" \
    --log-error="$DIR/log/mariadbd.log" --skip-name-resolve --innodb-buffer-pool-size=64M \
    --innodb-lock-wait-timeout=900 </dev/null >/dev/null 2>&1 &
  pid=$!
  deadline=$((SECONDS + TIMEOUT))
  while ((SECONDS < deadline)); do
    mysql -e 'select 1' >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || die "mariadbd exited"
    sleep 0.1
  done
  mysql -e 'select 1' >/dev/null 2>&1 || die "mariadbd did not come up"
  # Job ids start again at 1 with every start (slurmctld -c): no records from an earlier cluster.
  mysql -e 'drop database if exists slurm_acct_db' || die "could not reset the accounting database"
}

start_slurmdbd() {
  local deadline
  # slurmdbd.conf lies next to slurm.conf and must be readable by SlurmUser only.
  (
    umask 077
    cat >"$DIR/etc/slurmdbd.conf" <<EOF
# Written by .ci/slurm.sh: job accounting for the test cluster (sacct).
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$MYSQL_PORT
StorageUser=root
StorageLoc=slurm_acct_db
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/run/slurmdbd.pid
DebugLevel=info
EOF
  )
  $SBIN/slurmdbd >"$DIR/log/slurmdbd.out" 2>&1 || die "slurmdbd failed to start"
  deadline=$((SECONDS + TIMEOUT))
  while ((SECONDS < deadline)); do
    sacctmgr -n list cluster >/dev/null 2>&1 && break
    pid_of slurmdbd >/dev/null || { sleep 0.5; pid_of slurmdbd >/dev/null; } || die "slurmdbd exited"
    sleep 0.2
  done
  sacctmgr -n list cluster >/dev/null 2>&1 || die "slurmdbd does not answer"
  sacctmgr -i add cluster testcluster >/dev/null || die "sacctmgr add cluster failed"
}

write_conf() {
  # NoCtldInAddrAny/NoInAddrAny make the daemons (and srun) listen on the address the machine's
  # host name resolves to instead of on every address. Only when that is the loopback address:
  # otherwise they would listen where the node (NodeAddr=127.0.0.1) is not reached, or fail to
  # start when the host name does not resolve at all (some CI runners).
  local addr
  addr=$(getent ahostsv4 "$(hostname)" 2>/dev/null | awk 'NR == 1 { print $1 }' || true)
  if [[ $addr == 127.* ]]; then
    COMM_PARAMS="# $(hostname) resolves to $addr: listen on that loopback address only.
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny"
  else
    COMM_PARAMS="# $(hostname) resolves to '${addr:-nothing}', not a loopback address: the daemons listen on
# every address (Slurm's default); all traffic still goes to 127.0.0.1 (NodeAddr, SlurmctldHost)."
  fi
  if [ "$ACCOUNTING" = 1 ]; then
    ACCOUNTING_CONF="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# With munge, AccountingStoragePass names the munge socket for talking to slurmdbd (AuthInfo's
# socket is not used for that).
AccountingStoragePass=$MUNGE_SOCKET"
  else
    ACCOUNTING_CONF="# No accounting (SLURM_TEST_ACCOUNTING=1 adds it): sacct fails.
AccountingStorageType=accounting_storage/none"
  fi
  install -d -m 0755 "$DIR/etc" "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/run"
  # An empty plugstack.conf: without PlugStackConfig slurm would read /etc/slurm/plugstack.conf.
  : >"$DIR/etc/plugstack.conf"
  cat >"$CONF.tmp" <<EOF
# Written by .ci/slurm.sh: a one-node test cluster. Everything under $DIR.
ClusterName=testcluster
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
$COMM_PARAMS
AuthType=auth/munge
CredType=cred/munge
# cred_expire: job step credential lifetime, and also how long a requeued job waits before it may
# start again (Slurm's default 120 s would make every requeue take two minutes).
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=$CRED_EXPIRE
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/slurmd
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
PlugStackConfig=$DIR/etc/plugstack.conf
# No cgroups: process tracking through /proc, no task containment.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
$ACCOUNTING_CONF
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, a job without --mem would take the whole node's memory.
DefMemPerCPU=256
# The node may declare more CPUs than the machine has (task slots for tests).
SlurmdParameters=config_overrides
ReturnToService=2
JobRequeue=1
PreemptType=preempt/none
KillWait=10
MinJobAge=300
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
  mv "$CONF.tmp" "$CONF"
  # slurmd reads cgroup.conf next to slurm.conf when present; keep one that asks for nothing.
  cat >"$DIR/etc/cgroup.conf" <<EOF
# Written by .ci/slurm.sh: no cgroup constraints (proctrack/linuxproc, task/none).
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainDevices=no
EOF
  chmod 0644 "$CONF" "$DIR/etc/cgroup.conf" "$DIR/etc/plugstack.conf"
}

wait_idle() {
  local deadline=$((SECONDS + TIMEOUT)) state=""
  while ((SECONDS < deadline)); do
    state=$(SLURM_CONF=$CONF sinfo -h -n "$NODE" -o %t 2>/dev/null || true)
    case $state in
      idle) return 0 ;;
      down* | drain* | fail* | inval*)
        # ReturnToService=2 should bring it back; nudge it once it has registered.
        SLURM_CONF=$CONF scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;;
    esac
    pid_of slurmctld >/dev/null || die "slurmctld exited"
    pid_of slurmd >/dev/null || die "slurmd exited"
    sleep 0.5
  done
  die "node $NODE not idle after ${TIMEOUT}s (state: '${state}')"
}

up_line() {
  local acct=""
  [ "$ACCOUNTING" = 1 ] && acct=", accounting (sacct)"
  echo "SLURM test cluster up: node $NODE, $CPUS CPUs, ${MEM} MB, partition debug$acct; export SLURM_CONF=$CONF"
}

start_failed() {  # EXIT trap while starting: show the logs' ends, leave nothing running
  local rc=$? f
  [ $rc = 0 ] && return 0
  for f in $DAEMONS; do
    [ -s "$DIR/log/$f.log" ] && { log "--- last lines of $DIR/log/$f.log"; tail -n 8 "$DIR/log/$f.log" >&2; }
  done
  for f in slurmctld slurmd; do
    [ -s "$DIR/log/$f.out" ] && { log "--- $DIR/log/$f.out"; tail -n 8 "$DIR/log/$f.out" >&2; }
  done
  do_stop quiet
  log "start failed; nothing left running (logs in $DIR/log)"
  exit $rc
}

do_start() {
  local f
  if all_pids_alive && [ -s "$CONF" ] && wait_idle_or_busy; then
    up_line
    return 0
  fi
  install_packages
  # Start from a clean slate: whatever was left of an earlier run goes.
  do_stop quiet
  trap start_failed EXIT
  mkdir -p "$DIR/run" "$DIR/log"
  write_conf
  rm -rf "$DIR/state"/* "$DIR/spool"/*
  mkdir -p "$DIR/spool/slurmd"
  rm -f "$DIR/etc/slurmdbd.conf"
  for f in $DAEMONS; do : >"$DIR/log/$f.log"; done
  start_munged
  export SLURM_CONF=$CONF
  if [ "$ACCOUNTING" = 1 ]; then
    start_mariadbd
    start_slurmdbd
  fi
  # -c: no state (jobs) from an earlier cluster; -i: ignore unreadable state files.
  $SBIN/slurmctld -c -i >"$DIR/log/slurmctld.out" 2>&1 || die "slurmctld failed to start"
  $SBIN/slurmd -N "$NODE" >"$DIR/log/slurmd.out" 2>&1 || die "slurmd failed to start"
  wait_idle
  trap - EXIT
  up_line
}

wait_idle_or_busy() {  # an already running cluster: the node may be running jobs
  local state
  state=$(SLURM_CONF=$CONF sinfo -h -n "$NODE" -o %t 2>/dev/null || true)
  case $state in idle | mix | alloc | comp) return 0 ;; esac
  return 1
}

# ---- stop -------------------------------------------------------------------------------------

do_stop() {
  local quiet=${1:-} pid i jobs
  if pid_of slurmctld >/dev/null; then
    # Cancel every job so that no task outlives the cluster.
    mapfile -t jobs < <(SLURM_CONF=$CONF squeue -h -o %A 2>/dev/null || true)
    if [ ${#jobs[@]} -gt 0 ]; then
      SLURM_CONF=$CONF scancel --full --quiet "${jobs[@]}" >/dev/null 2>&1 || true
    fi
    for ((i = 0; i < 50; i++)); do
      [ -z "$(SLURM_CONF=$CONF squeue -h -o %A 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
  # The daemons each take about 2 s to shut down on SIGTERM; stop them together.
  stop_pids slurmd slurmctld slurmdbd mariadbd munged
  for pid in $(our_leftovers); do kill -KILL "$pid" 2>/dev/null || true; done
  rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
  [ -n "$quiet" ] || log "SLURM test cluster stopped ($DIR)"
}

# ---- status -----------------------------------------------------------------------------------

do_status() {
  local n rc=0
  for n in munged mariadbd slurmdbd slurmctld slurmd; do
    case $n in mariadbd | slurmdbd) [ -e "$DIR/run/$n.pid" ] || [ "$ACCOUNTING" = 1 ] || continue ;; esac
    if pid_of $n >/dev/null; then echo "$n: running (pid $(pid_of $n))"; else echo "$n: not running"; rc=1; fi
  done
  if [ $rc = 0 ]; then
    echo "SLURM_CONF=$CONF"
    SLURM_CONF=$CONF sinfo || rc=1
    SLURM_CONF=$CONF squeue || rc=1
  fi
  return $rc
}

# ---- main -------------------------------------------------------------------------------------

cmd=${1:-}
case $cmd in
  start | stop | status) ;;
  -h | --help | help) usage; exit 0 ;;
  *) usage >&2; exit 2 ;;
esac
if [ "$(id -u)" != 0 ] && [ "$cmd" != status ]; then
  command -v sudo >/dev/null || die "must run as root (no sudo here)"
  exec sudo -E "$0" "$@"
fi
case $cmd in
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
esac
