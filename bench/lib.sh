#!/bin/bash
# Helpers sourced by every benchmark script in bench/: process control by PID,
# CPU accounting per process tree, one sipp load point, and the rate search.
# All traffic stays on 127.0.0.1; every sipp run is bounded by -m, -timeout
# and `timeout`. Adapted from the side-by-side kit that measured Kamailio.
BENCH=${BENCH:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
ROOT=$(cd "$BENCH/.." && pwd)
OUT=${BENCH_OUT:-$BENCH/out}
SIPP=${SIPP:-/usr/bin/sipp}
PBX_BIN=${PBX_BIN:-$ROOT/target/release/pbx}
IP=127.0.0.1
# Ports away from the SIP defaults so a PBX or test run elsewhere on the host
# does not collide with the benchmark.
SERVER_PORT=${SERVER_PORT:-45060}   # the PBX or Kamailio under test
UAC_PORT=${UAC_PORT:-45080}         # sipp placing calls or registering
UAS_PORT=${UAS_PORT:-45090}         # sipp answering calls
REG_PORT=${REG_PORT:-45100}         # sipp registering the agents of the call benchmarks
HTTP_PORT=${HTTP_PORT:-48080}
CLK=$(getconf CLK_TCK)
PROBE_DUR=${PROBE_DUR:-5}       # seconds per search probe
HOLD_DUR=${HOLD_DUR:-20}        # seconds per confirmation run
HOLD_RUNS=${HOLD_RUNS:-3}       # confirmation runs; the median is reported
STEP_PCT=${STEP_PCT:-50}        # ramp step while no probe has failed
RES_PCT=${RES_PCT:-8}           # stop bisecting when the bracket is this narrow
MIN_ACH_PCT=${MIN_ACH_PCT:-95}  # the achieved rate must reach 95 % of the target
MAX_FAIL_PPM=${MAX_FAIL_PPM:-1000}  # under 0.1 % failed calls
MAX_RETRANS=${MAX_RETRANS:-}    # empty: retransmissions allowed; 0: none allowed
BACKOFF_PCT=${BACKOFF_PCT:-15}  # rate cut after a failed confirmation
HOLD_MARGIN_PCT=${HOLD_MARGIN_PCT:-0}  # confirm this much below the best probe
SIPP_BUF=${SIPP_BUF:-4194304}
mkdir -p "$OUT/points" "$OUT/logs" "$OUT/run"

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# Clock ticks (user + system, all threads) of a process and its descendants.
tree_ticks() {
  local root=$1
  [ -z "$root" ] && { echo 0; return; }
  cat /proc/[0-9]*/stat 2>/dev/null | awk -v r="$root" '{
      pid=$1; s=$0; sub(/^[0-9]+ \(.*\) /,"",s); split(s,f," ");
      pp[pid]=f[2]; t[pid]=f[12]+f[13] }
    END { tot=0; for (p in pp) { q=p; for (d=0; d<10 && q!="" && q!=0; d++) { if (q==r) { tot+=t[p]; break }; q=pp[q] } } print tot }'
}

# Stops a process this harness started, by PID: TERM, then KILL after 5 s.
stop_pid() {
  local p=$1; [ -z "$p" ] && return 0
  kill "$p" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$p" 2>/dev/null; return 0
}

# Kills, by PID, a sipp of the point just run that is still bound to its
# local port (the value of -p among the arguments). After an overloaded point a
# sipp outlived both its own -timeout and timeout's SIGKILL, held the port,
# and every later point of the pass failed at once with rc 254.
reap_sipp_port() {
  local port="" prev="" arg pids p
  for arg in "$@"; do [ "$prev" = "-p" ] && port=$arg; prev=$arg; done
  [ -z "$port" ] && return 0
  pids=$(ss -Hlunp "sport = :$port" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u)
  for p in $pids; do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "sipp" ] || continue
    log "sipp pid $p still held UDP port $port after its point; killing it"
    kill -9 "$p" 2>/dev/null
  done
  return 0
}

# Fails when something already listens on a UDP port of 127.0.0.1 (another
# PBX on the host would answer the load instead of the server under test).
port_free() {
  ss -lun 2>/dev/null | grep -q "127.0.0.1:$1 " && { log "UDP port $1 is already in use"; return 1; }
  return 0
}

# Waits up to 10 s for a UDP port on 127.0.0.1 to be bound.
wait_udp() {
  for _ in $(seq 100); do ss -lun 2>/dev/null | grep -q "127.0.0.1:$1 " && return 0; sleep 0.1; done
  return 1
}

# Writes the 10,000 users u000000..u009999 (password pw + the same digits) in
# sipp's injection format: user;password;[authentication ...] keyword.
users_csv() {
  local f=$OUT/run/users.csv n=${1:-10000}
  [ -s "$f" ] && [ "$(wc -l <"$f")" -eq $((n+1)) ] && { echo "$f"; return; }
  awk -v n="$n" 'BEGIN { print "SEQUENTIAL"; for (i=0;i<n;i++) { u=sprintf("%06d", i);
      printf "u%s;pw%s;[authentication username=u%s password=pw%s]\n", u, u, u, u } }' >"$f"
  echo "$f"
}

# Summarises a sipp statistics CSV (cumulative columns of its last line) as one
# key=value line. args: csv target_rate calls server_cpu aux_cpu sipp_cpu
summarize_csv() {
  awk -F';' -v rate="$2" -v n="$3" -v scpu="$4" -v ycpu="$5" -v gcpu="$6" \
      -v minach="$MIN_ACH_PCT" -v maxppm="$MAX_FAIL_PPM" -v maxre="$MAX_RETRANS" '
    NR==1 { for (i=1;i<=NF;i++) h[$i]=i; next }
    { last=$0 }
    END {
      split(last, v, ";");
      created=v[h["TotalCallCreated"]]+0; ok=v[h["SuccessfulCall(C)"]]+0; fail=v[h["FailedCall(C)"]]+0;
      retr=v[h["Retransmissions(C)"]]+0; cr=v[h["CallRate(C)"]]+0;
      # response-time percentiles: upper bound of the bucket holding the rank
      ntot=0; p50=""; p99=""; cum=0;
      for (i=1;i<=length(v);i++) for (k in h) if (h[k]==i && k ~ /^ResponseTimeRepartition1_/) ntot+=v[i];
      for (i=1;i<=length(v);i++) for (k in h) if (h[k]==i && k ~ /^ResponseTimeRepartition1_/) {
          cum+=v[i]; lbl=k; sub(/^ResponseTimeRepartition1_/,"",lbl);
          if (p50=="" && ntot>0 && cum>=0.5*ntot) p50=lbl;
          if (p99=="" && ntot>0 && cum>=0.99*ntot) p99=lbl; }
      failppm = (n>0) ? (n-ok)*1000000/n : 1000000;
      pass = (failppm < maxppm && cr*100 >= rate*minach && (maxre=="" || retr<=maxre+0)) ? "PASS" : "FAIL";
      printf "target=%d n=%d created=%d ok=%d failed=%d fail_pct=%.3f achieved=%.1f retrans=%d rtt_p50_ms=%s rtt_p99_ms=%s server_cpu_pct=%s aux_cpu_pct=%s sipp_cpu_pct=%s verdict=%s\n",
        rate, n, created, ok, fail, failppm/10000, cr, retr, p50, p99, scpu, ycpu, gcpu, pass
    }' "$1"
}

# run_point TAG RATE DUR sipp-args...
#   SERVER_PID: process tree under test (its CPU is reported); AUX_PID: another
#   tree to account, such as the answering sipp. Prints the summary line and
#   returns 0 when the point passes.
run_point() {
  local tag=$1 rate=$2 dur=$3; shift 3
  local n=$((rate*dur))
  local lim=${LIMIT:-$(( rate*2 > 2000 ? rate*2 : 2000 ))}
  local out="$OUT/points/$tag-r$rate-d$dur-$(date +%H%M%S)"
  local t0 t1 s0 s1 w0 w1
  # The PBX keeps a finished transaction for 32 s (Timer J), so an overloaded
  # point would still load the next one: with PBX_CFG_PER_POINT set, every
  # point gets a fresh PBX, and PBX_READY_HOOK (a function) prepares it.
  if [ -n "${PBX_CFG_PER_POINT:-}" ]; then
    pbx_stop
    pbx_start "$PBX_CFG_PER_POINT" 2>>"$OUT/logs/pbx-restarts.log" || return 1
    SERVER_PID=$PBX_PID
    [ -n "${PBX_READY_HOOK:-}" ] && { "$PBX_READY_HOOK" || return 1; }
  fi
  t0=$(tree_ticks "${SERVER_PID:-}"); s0=$(tree_ticks "${AUX_PID:-}"); w0=$(date +%s.%N)
  # CALL_S: how long each call lasts, for scenarios that hold their calls,
  # so that neither limit cuts the last calls short.
  local call_s=${CALL_S:-0}
  timeout -k 5 $((dur+15+call_s)) /usr/bin/time -f '%U %S %e' -o "$out.time" \
    "$SIPP" "$@" -r "$rate" -m "$n" -l "$lim" -timeout $((dur+10+call_s))s -nostdin \
    -buff_size "$SIPP_BUF" -trace_stat -stf "$out.csv" -fd 1 -trace_err -error_file "$out.err" \
    -max_log_size 20000000 >"$out.log" 2>&1 &
  local runner=$! watcher="" rc
  if [ "${FAIL_FAST:-0}" = 1 ]; then
    # The watcher writes nothing to standard output, because callers read
    # this function's output through $(...), which waits for every writer.
    watch_point "$runner" "$out.csv" "$n" "$out.stopped" </dev/null >/dev/null 2>&1 &
    watcher=$!
  fi
  wait "$runner"; rc=$?
  [ -n "$watcher" ] && { kill "$watcher" 2>/dev/null; wait "$watcher" 2>/dev/null; }
  t1=$(tree_ticks "${SERVER_PID:-}"); s1=$(tree_ticks "${AUX_PID:-}"); w1=$(date +%s.%N)
  reap_sipp_port "$@"
  local wall scpu ycpu gcpu
  wall=$(echo "$w0 $w1" | awk '{print $2-$1}')
  scpu=$(echo "$t0 $t1 $wall $CLK" | awk '{printf "%.0f", ($2-$1)/$4/$3*100}')
  ycpu=$(echo "$s0 $s1 $wall $CLK" | awk '{printf "%.0f", ($2-$1)/$4/$3*100}')
  gcpu=$(tail -1 "$out.time" 2>/dev/null | awk -v w="$wall" '{printf "%.0f", ($1+$2)/w*100}')
  [ -s "$out.csv" ] || { echo "target=$rate n=$n verdict=FAIL note=no-stats rc=$rc tag=$tag"; return 1; }
  local line
  line="$(summarize_csv "$out.csv" "$rate" "$n" "$scpu" "$ycpu" "$gcpu") rc=$rc wall_s=$wall tag=$tag"
  if [ -s "$out.stopped" ]; then
    line="$line stopped_after_s=$(cat "$out.stopped")"
    # A PBX under test starts afresh for each point.
    [ -z "${PBX_CFG_PER_POINT:-}" ] && wait_idle "${SERVER_PID:-}"
    wait_idle "${AUX_PID:-}"
  fi
  echo "$line"
  echo "$line" >>"$OUT/all-points.log"
  [[ $line == *verdict=PASS* ]]
}

# wait_idle PID: waits, 15 s at most, until the process tree of PID uses
# under a tenth of a core over half a second. A server that stays up
# between points (Kamailio), or the sipp UAS (AUX_PID), may still
# work through the requests of a point stopped early. In one pass without
# this wait, every confirmation run of Kamailio's registrar failed within
# 2 to 6 s. With it, the same search on the same VM confirmed a rate.
wait_idle() {
  local pid=$1 before after
  [ -n "$pid" ] || return 0
  for _ in $(seq 30); do
    before=$(tree_ticks "$pid"); sleep 0.5; after=$(tree_ticks "$pid")
    [ $(( (after-before)*100 )) -lt $(( CLK*5 )) ] && return 0
  done
  log "process $pid still busy 15 s after a stopped point; the next point starts anyway"
}

# watch_point RUNNER CSV CALLS STOPPED_FILE: stops the sipp under RUNNER
# (timeout, then time, then sipp) as soon as its statistics already fail
# the point: at least MAX_FAIL_PPM of CALLS failed, or more retransmissions
# than MAX_RETRANS. Both counts only grow, so the verdict is the one the
# full run would get. A point far above the ceiling then ends when its
# failures show (after a second or two when retransmissions count, after
# the calls' time-outs otherwise) instead of running out its time. SIGINT
# ends sipp at once (SIGUSR1 would wait for the calls in progress), and the
# statistics line that showed the failure is already in the file. sipp
# sometimes exits with 134 (abort) on SIGINT, so the point's rc means
# nothing then. Writes the seconds run to STOPPED_FILE when it stops one.
watch_point() {
  local runner=$1 csv=$2 calls=$3 stopped=$4 sipp_pid="" start verdict parent
  start=$(date +%s.%N)
  while kill -0 "$runner" 2>/dev/null; do
    sleep 0.5
    if [ -z "$sipp_pid" ]; then
      parent=$(pgrep -P "$runner" | head -1)
      [ -n "$parent" ] && sipp_pid=$(pgrep -x -P "$parent" sipp | head -1)
      [ -z "$sipp_pid" ] && continue
    fi
    [ -s "$csv" ] || continue
    verdict=$(awk -F';' -v n="$calls" -v maxppm="$MAX_FAIL_PPM" -v maxre="$MAX_RETRANS" '
      NR==1 { for (i=1;i<=NF;i++) h[$i]=i; next }
      { last=$0 }
      END { if (last=="") exit; split(last, v, ";");
            fail=v[h["FailedCall(C)"]]+0; retr=v[h["Retransmissions(C)"]]+0;
            if (fail*1000000 >= maxppm*n || (maxre!="" && retr>maxre+0)) print "fail" }' "$csv")
    if [ "$verdict" = fail ]; then
      kill -INT "$sipp_pid" 2>/dev/null
      echo "$start $(date +%s.%N)" | awk '{printf "%.1f\n", $2-$1}' >"$stopped"
      return 0
    fi
  done
}

# find_max TAG START MAX sipp-args...
#   Ramps by STEP_PCT with PROBE_DUR-second probes until one fails, bisects to
#   RES_PCT, then confirms with HOLD_RUNS runs of HOLD_DUR seconds at
#   HOLD_MARGIN_PCT below the best probe. When most of them fail, it backs off
#   BACKOFF_PCT (three times at most). Writes
#   $OUT/TAG.summary, whose RESULT line holds the median, min and max of the
#   confirmation runs.
find_max() {
  local tag=$1 start=$2 max=$3; shift 3
  local rate=$start pass=0 fail=0 line
  # Probes and confirmations stop once they have failed (watch_point), and
  # FAIL_FAST=0 runs each to its end.
  local FAIL_FAST=${FAIL_FAST:-1}
  # A second between points lets a server that stays up settle. A PBX
  # restarted for each point (PBX_CFG_PER_POINT) needs no pause: its stop
  # after a loaded point alone takes about 1.4 s.
  local pause=1
  [ -n "${PBX_CFG_PER_POINT:-}" ] && pause=0
  local sum="$OUT/$tag.summary"; : >"$sum"
  log "[$tag] ramp from $start (max $max), probes ${PROBE_DUR}s"
  while :; do
    if line=$(run_point "$tag-probe" "$rate" "$PROBE_DUR" "$@"); then pass=$rate; else fail=$rate; fi
    echo "probe $line" | tee -a "$sum" >&2
    [ "$fail" -gt 0 ] && break
    [ "$rate" -ge "$max" ] && break
    rate=$(( rate*(100+STEP_PCT)/100 )); [ "$rate" -gt "$max" ] && rate=$max
    sleep "$pause"
  done
  # a failed start: step down until a probe passes
  while [ "$pass" -eq 0 ] && [ "$rate" -gt $((start/8)) ] && [ "$rate" -gt 10 ]; do
    rate=$(( rate*2/3 )); sleep "$pause"
    if line=$(run_point "$tag-probe" "$rate" "$PROBE_DUR" "$@"); then pass=$rate; else fail=$rate; fi
    echo "down $line" | tee -a "$sum" >&2
  done
  while [ "$fail" -gt 0 ] && [ "$pass" -gt 0 ] && [ $(( (fail-pass)*100 )) -gt $(( pass*RES_PCT )) ]; do
    rate=$(( (pass+fail)/2 )); sleep "$pause"
    if line=$(run_point "$tag-probe" "$rate" "$PROBE_DUR" "$@"); then pass=$rate; else fail=$rate; fi
    echo "bisect $line" | tee -a "$sum" >&2
  done
  [ "$pass" -eq 0 ] && { echo "RESULT tag=$tag max_rate=0 note=no-passing-probe" | tee -a "$sum"; return 1; }
  local r=$(( pass*(100-HOLD_MARGIN_PCT)/100 )) attempt
  for attempt in 1 2 3; do
    local npass=0 i lines=()
    for i in $(seq "$HOLD_RUNS"); do
      sleep "$pause"
      if line=$(run_point "$tag-hold" "$r" "$HOLD_DUR" "$@"); then npass=$((npass+1)); fi
      echo "hold$i $line" | tee -a "$sum" >&2
      lines+=("$line")
      # stop early once most runs failed
      [ $((i-npass)) -gt $((HOLD_RUNS/2)) ] && break
    done
    if [ "$npass" -gt $((HOLD_RUNS/2)) ]; then
      printf '%s\n' "${lines[@]}" | awk -v tag="$tag" -v r="$r" -v np="$npass" '
        function sort(a,n,  i,j,t){ for(i=1;i<=n;i++)for(j=i+1;j<=n;j++)if(a[j]+0<a[i]+0){t=a[i];a[i]=a[j];a[j]=t} }
        { for(i=1;i<=NF;i++){split($i,kv,"="); if(kv[1]=="achieved")A[NR]=kv[2]; if(kv[1]=="server_cpu_pct")S[NR]=kv[2];
            if(kv[1]=="aux_cpu_pct")Y[NR]=kv[2]; if(kv[1]=="sipp_cpu_pct")G[NR]=kv[2]; if(kv[1]=="fail_pct")F[NR]=kv[2];
            if(kv[1]=="retrans")R[NR]=kv[2]; if(kv[1]=="rtt_p99_ms")P[NR]=kv[2]} }
        END { n=NR; m=int((n+1)/2); sort(A,n); sort(S,n); sort(Y,n); sort(G,n); sort(F,n); sort(R,n);
              printf "RESULT tag=%s max_rate=%d runs=%d passed=%d median=%.1f min=%.1f max=%.1f fail_pct=%s retrans=%s server_cpu_pct=%s server_cpu_min=%s server_cpu_max=%s sipp_cpu_pct=%s aux_cpu_pct=%s rtt_p99_ms=%s\n",
              tag, r, n, np, A[m], A[1], A[n], F[m], R[m], S[m], S[1], S[n], G[m], Y[m], P[1] }' | tee -a "$sum"
      return 0
    fi
    [ "$attempt" -eq 3 ] && break
    r=$(( r*(100-BACKOFF_PCT)/100 ))
    log "[$tag] confirmation failed, backing off to $r"
  done
  echo "RESULT tag=$tag max_rate=0 note=unconfirmed last_tried=$r" | tee -a "$sum"
  return 1
}

# Reads one key of the RESULT line of a summary: result_field TAG KEY
result_field() {
  grep -h '^RESULT' "$OUT/$1.summary" 2>/dev/null | tail -1 | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# --- Kamailio -----------------------------------------------------------
# kamailio_start CFG CHILDREN [-A DEFINE ...]: runs Kamailio in the
# foreground under `timeout`; sets KAM_PID to the root of its process tree.
kamailio_start() {
  local cfg=$1 children=$2; shift 2
  local logf=$OUT/logs/kamailio-$(basename "$cfg" .cfg)-$(date +%H%M%S).log
  port_free "$SERVER_PORT" || return 1
  timeout -k 5 1800 /usr/sbin/kamailio -f "$BENCH/kamailio/$cfg" -DD -E -n "$children" \
    -m "${KAM_SHM_MB:-1024}" -M 16 -Y "$OUT/run" -A "BENCH_LISTEN=udp:$IP:$SERVER_PORT" "$@" >"$logf" 2>&1 &
  KAM_PID=$!
  wait_udp "$SERVER_PORT" || { log "kamailio did not bind, see $logf"; tail -5 "$logf" >&2; return 1; }
  sleep 1
  kill -0 "$KAM_PID" 2>/dev/null || { log "kamailio exited, see $logf"; return 1; }
  log "kamailio $cfg children=$children pid=$KAM_PID"
}

# --- the PBX ------------------------------------------------------------
# PBX_CONFIG_EXTRA for call rate points. Finished transactions count against
# [overload] max_transactions for their 32 s on UDP, so its default of
# 200,000 rejects every new call after about 15 s at 4,000 calls/s. That is
# a memory guard, not capacity, and Kamailio has none, so it is lifted.
CALLS_UNCAPPED=$'[overload]\nmax_transactions = 10000000'

# pbx_config FILE AGENTS QUEUE_MEMBERS RECORDING RTP_RANGE [SIP_EXTRA]: writes
# a configuration with AGENTS agents u000000.. (password pw + digits), a queue
# "bench" of the first QUEUE_MEMBERS of them behind DID 5000, the loopback
# trunk, and no qualify probes, so OPTIONS traffic does not load the runs.
# SIP_EXTRA and PBX_SIP_EXTRA (env) contain more lines for the [sip] table
# and PBX_MEDIA_EXTRA (env) for the [media] table. PBX_CONFIG_EXTRA (env) contains whole tables
# appended at the end.
pbx_config() {
  local f=$1 agents=$2 members=$3 rec=$4 rtp=$5 sip_extra=${6:-}
  {
    cat <<EOF
# Generated by bench/lib.sh for the benchmarks.
[sip]
listen = "$IP:$SERVER_PORT"
domain = "bench.local"
digest_algorithms = ["MD5"]
$sip_extra
${PBX_SIP_EXTRA:-}

[http]
listen = "$IP:$HTTP_PORT"

[media]
address = "$IP"
rtp_ports = "$rtp"
rtp_timeout_secs = 0
${PBX_MEDIA_EXTRA:-}

[registrar]
min_expires_secs = 60
max_expires_secs = 3600
default_expires_secs = 3600
max_contacts = 1
qualify_interval_secs = 0

[recording]
enabled = $rec

[[trunks]]
name = "bench"
allow = ["127.0.0.0/8"]

[[dids]]
number = "5000"
queue = "bench"

EOF
    awk -v n="$agents" 'BEGIN { for (i=0;i<n;i++) { u=sprintf("%06d", i);
        printf "[[agents]]\nid = \"u%s\"\npassword = \"pw%s\"\n\n", u, u } }'
    awk -v m="$members" 'BEGIN { printf "[[queues]]\nname = \"bench\"\nring_timeout_secs = 15\nmax_wait_secs = 30\nretry_delay_secs = 1\nwrap_up_secs = 0\nstrategy = \"longest-idle\"\nagents = [";
        for (i=0;i<m;i++) printf "%s\"u%06d\"", (i ? ", " : ""), i; print "]" }'
    if [ -n "${PBX_CONFIG_EXTRA:-}" ]; then printf '\n%s\n' "$PBX_CONFIG_EXTRA"; fi
  } >"$f"
}

# pbx_start CONFIG: starts the PBX on a fresh data folder under `timeout`;
# sets PBX_PID (the pbx process itself, whose CPU is accounted).
pbx_start() {
  local cfg=$1 data=$OUT/run/pbx-data-$(date +%H%M%S)
  local logf=$OUT/logs/pbx-$(date +%H%M%S).log
  "$PBX_BIN" check-config "$cfg" >&2 || return 1
  port_free "$SERVER_PORT" || return 1
  mkdir -p "$data"
  PBX_ADMIN_PASSWORD=bench-admin-password PBX_LOG=${PBX_LOG_LEVEL:-warn} \
    timeout -k 5 1800 "$PBX_BIN" --config "$cfg" --data-dir "$data" >"$logf" 2>&1 &
  local wrapper=$!
  wait_udp "$SERVER_PORT" || { log "pbx did not bind, see $logf"; tail -5 "$logf" >&2; return 1; }
  PBX_PID=$(pgrep -P "$wrapper" | head -1)
  echo "$wrapper" >"$OUT/run/pbx.pid"
  echo "$data" >"$OUT/run/pbx.data"
  PBX_DATA=$data
  sleep 0.5
  log "pbx pid=$PBX_PID data=$data log=$logf"
}

# Stops the PBX started last, through the pid file, because run_point may
# have restarted it in a subshell. Then deletes its data folder, unless
# BENCH_KEEP_DATA=1: with a fresh PBX for each point, one pass of run-all
# left about 1.5 GiB of databases and recordings, and a few dozen
# benchmark runs filled the disk of a test VM.
pbx_stop() {
  [ -s "$OUT/run/pbx.pid" ] && stop_pid "$(cat "$OUT/run/pbx.pid")"
  rm -f "$OUT/run/pbx.pid"; PBX_PID=
  local data
  data=$(cat "$OUT/run/pbx.data" 2>/dev/null)
  rm -f "$OUT/run/pbx.data"
  if [ "${BENCH_KEEP_DATA:-0}" != 1 ] && [[ $data == "$OUT"/run/pbx-data-* ]]; then
    rm -rf "$data"
  fi
  return 0
}
