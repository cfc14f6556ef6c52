#!/usr/bin/env bash
# A single-node SLURM cluster on loopback, for running and testing `al-run -m hydra/launcher=slurm`
# on one machine (Debian 12: Slurm 22.05 + munge; root; no systemd needed).
#
#   bash scripts/slurm_cluster.sh up       install packages if missing, write config, start daemons
#   bash scripts/slurm_cluster.sh down     cancel jobs, stop the daemons this script started
#   bash scripts/slurm_cluster.sh status   which daemons run (exit 1 if slurmctld/slurmd do not)
#   bash scripts/slurm_cluster.sh reset    down + forget all jobs (controller state and accounting DB)
#
# Settings (environment):
#   SLURM_ACCOUNTING=1  also run MariaDB (unix socket only) + slurmdbd, so `sacct` works. submitit
#                       polls sacct for job states; without it a job killed before writing its result
#                       (scancel, OOM) makes the submitting process wait forever. 0 skips them.
#   SLURM_MEM_MB        memory the node advertises (default: 80% of this machine's RAM); a job's
#                       hydra.launcher.mem_gb must fit in it or sbatch rejects the job at once.
# Daemons listen on 127.0.0.1 only (slurmdbd, which has no bind option in 22.05, on 6819 of all
# interfaces; use SLURM_ACCOUNTING=0 where that is not acceptable). Logs: /var/log/slurm/.
set -euo pipefail

ACCOUNTING=${SLURM_ACCOUNTING:-1}
NODE=$(hostname -s)
CPUS=$(nproc)
MEM_MB=${SLURM_MEM_MB:-$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.8}' /proc/meminfo)}
RUN=/run/slurm
DAEMON_PIDS="$RUN/slurmd.pid $RUN/slurmctld.pid $RUN/slurmdbd.pid /run/mysqld/mysqld.pid /run/munge/munged.pid"

log() { echo "slurm_cluster: $*" >&2; }

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

running() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

node_ready() { sinfo -h -n "$NODE" -o %T | grep -qE '^(idle|mixed|allocated)'; }

install_packages() {
  local packages=(slurmctld slurmd slurm-client munge)
  [[ $ACCOUNTING == 1 ]] && packages+=(slurmdbd mariadb-server)
  dpkg -s "${packages[@]}" >/dev/null 2>&1 && return 0
  log "installing ${packages[*]}"
  # The packages' postinst scripts try to start services; without systemd that is refused, harmlessly.
  DEBIAN_FRONTEND=noninteractive apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}"
}

write_config() {
  mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm "$RUN"
  local accounting="AccountingStorageType=accounting_storage/none"
  if [[ $ACCOUNTING == 1 ]]; then
    accounting=$'AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=localhost\nAccountingStoragePort=6819'
  fi
  cat >/etc/slurm/slurm.conf <<EOF
# written by al-experiments/scripts/slurm_cluster.sh
ClusterName=alcluster
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# a requeued job may restart after 10 s instead of the default 120 s
AuthInfo=cred_expire=10
SlurmctldPort=6817
SlurmdPort=6818
SrunPortRange=60001-60100
# bind to the address the host name resolves to (loopback), not to every interface
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
# no cgroups in a container: track processes by parent id, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# a job without --mem would otherwise take the whole node and jobs would run one at a time
DefMemPerCPU=1000
# reject at submission (not pend forever) what the node can never satisfy
EnforcePartLimits=ALL
ReturnToService=2
$accounting
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
InactiveLimit=0
KillWait=30
MinJobAge=300
SlurmctldTimeout=120
SlurmdTimeout=300
Waittime=0
# partition 'high' preempts (requeues) jobs of 'debug', which get their --signal first
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
SlurmctldParameters=preempt_send_user_signal
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE GraceTime=20
PartitionName=high Nodes=$NODE MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
EOF
  if [[ $ACCOUNTING == 1 ]]; then
    cat >/etc/slurm/slurmdbd.conf <<'EOF'
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurm/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurmdbpass
StorageLoc=slurm_acct_db
EOF
    chmod 600 /etc/slurm/slurmdbd.conf  # slurmdbd refuses a readable config holding a password
  fi
}

start_munge() {
  running /run/munge/munged.pid && return 0
  [[ -s /etc/munge/munge.key ]] || mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  install -d -o munge -g munge -m 755 /run/munge
  runuser -u munge -- /usr/sbin/munged  # daemonizes and writes its pid file
  until_ok 10 sh -c 'munge -n | unmunge'
}

start_mariadb() {
  running /run/mysqld/mysqld.pid && return 0
  install -d -o mysql -g mysql /run/mysqld
  [[ -d /var/lib/mysql/mysql ]] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
  # no TCP at all: slurmdbd talks to it through the unix socket (StorageHost=localhost)
  setsid /usr/sbin/mariadbd --user=mysql --skip-networking --pid-file=/run/mysqld/mysqld.pid \
    --innodb-buffer-pool-size=256M --innodb-lock-wait-timeout=900 \
    </dev/null >>/var/log/slurm/mariadbd.log 2>&1 &
  until_ok 30 mysqladmin ping
  mysql -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
            CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmdbpass';
            GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
}

# stop_pidfile FILE...: stop the daemons together (each takes about 2 s to leave) and wait for all
stop_pidfile() {
  local file pids=() pid
  for file in "$@"; do
    running "$file" || continue
    pid=$(cat "$file"); kill "$pid"; pids+=("$pid:$file")
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 200); do kill -0 "${pid%%:*}" 2>/dev/null || continue 2; sleep 0.1; done
    log "pid ${pid%%:*} (${pid#*:}) did not stop within 20 s"
  done
}

up() {
  install_packages
  write_config
  start_munge
  if [[ $ACCOUNTING == 1 ]]; then
    start_mariadb
    running $RUN/slurmdbd.pid || /usr/sbin/slurmdbd
    until_ok 30 bash -c '</dev/tcp/127.0.0.1/6819'
  fi
  running $RUN/slurmctld.pid || /usr/sbin/slurmctld
  until_ok 30 scontrol ping
  running $RUN/slurmd.pid || /usr/sbin/slurmd
  if ! until_ok 30 node_ready; then
    # a node left DOWN by an earlier unclean stop must be resumed by hand
    scontrol update nodename="$NODE" state=resume || true
    until_ok 30 node_ready
  fi
  sinfo
}

down() {
  if running $RUN/slurmctld.pid; then
    # cancel what is left so no job outlives the cluster and reappears at the next start
    squeue -h -o %A | sort -u | xargs -r scancel || true
    until_ok 40 sh -c '[ -z "$(squeue -h)" ]' || true
  fi
  # SLURM's daemons first, then what they use (their accounting database, munge)
  stop_pidfile "$RUN/slurmd.pid" "$RUN/slurmctld.pid" "$RUN/slurmdbd.pid"
  stop_pidfile /run/mysqld/mysqld.pid /run/munge/munged.pid
}

status() {
  local file ok=0
  for file in $DAEMON_PIDS; do
    if running "$file"; then echo "running: $file ($(cat "$file"))"; else echo "stopped: $file"; fi
  done
  running $RUN/slurmctld.pid && running $RUN/slurmd.pid || ok=1
  return $ok
}

reset() {
  down
  # controller state and accounting go together: job ids restart at 1, and an old record with a
  # reused id would otherwise report a stale state for a new job
  rm -rf /var/spool/slurmctld/* /var/spool/slurmd/*
  if [[ -d /var/lib/mysql/mysql ]]; then
    start_mariadb
    mysql -e 'DROP DATABASE IF EXISTS slurm_acct_db'
    stop_pidfile /run/mysqld/mysqld.pid
  fi
}

case "${1:-}" in
  up | down | status | reset) "$1" ;;
  *) echo "usage: $0 up|down|status|reset" >&2; exit 2 ;;
esac
