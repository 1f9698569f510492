# shellcheck shell=bash
# Helpers for the cluster tests (test_cluster_*.sh), on top of lib.sh: a holdfastd with a
# cluster section, join tokens, agents joined and run in their own sessions, the status JSON,
# and waits on logs. Source after lib.sh; needs BUILD set to the build folder.

CL_AGENT=$BUILD/agent/holdfast-agent
CL_CTL=$BUILD/holdfastctl
CL_WRITER=$BUILD/tests/cluster_writer
CL_IQN=iqn.2026-11.org.holdfast:cluster
[ -x "$CL_AGENT" ] || hf_die "$CL_AGENT is not built"
[ -x "$CL_WRITER" ] || hf_die "$CL_WRITER is not built"

cl_fail=0
cl_check() { # cl_check NAME COMMAND...: run it, log PASS or FAIL, go on either way
	local name=$1
	shift
	if "$@"; then
		hf_log "PASS $name"
	else
		hf_log "FAIL $name"
		cl_fail=1
	fi
}

# cl_config FILE DATA ADDR PORT AGENT_PORT JOIN_PORT HB_MS MISS WAIT_FOR_ALL HOST...: one
# memory LUN (64 MiB) behind one portal, and a cluster section with the given hosts (1 vote
# each).
cl_config() {
	local file=$1 data=$2 addr=$3 port=$4 aport=$5 jport=$6 hb=$7 miss=$8 wfa=$9 hosts="" h
	shift 9
	for h in "$@"; do
		hosts+="${hosts:+, }{ name = \"$h\"; votes = 1; }"
	done
	mkdir -p "$data"
	cat >"$file" <<EOF
data_dir = "$data";
control_socket = "$data/holdfastd.sock";
workers = ${HF_WORKERS:-2};
portals = ( { name = "p1"; address = "$addr"; port = $port; tpgt = 1; } );
backstores = ( { name = "bs0"; type = "memory"; size = "64M"; } );
targets = ( { iqn = "$CL_IQN"; portals = [ "p1" ]; luns = ( { id = 0; backstore = "bs0"; } ); } );
cluster = { name = "c1"; address = "$addr"; agent_port = $aport; join_port = $jport;
	heartbeat_ms = $hb; miss_threshold = $miss; wait_for_all = $wfa;
	hosts = ( $hosts ); };
EOF
}

# cl_start_box CONF LOG PORT: start holdfastd and wait for its portal; sets CL_CONF, CL_SID.
cl_start_box() {
	CL_CONF=$1
	hf_start_holdfastd CL_SID "$BUILD" "$1" "$2"
	hf_wait_port "$3" "$CL_SID" "$2"
}

cl_ctl() { "$CL_CTL" -c "$CL_CONF" "$@"; }

# cl_token [TTL]: print a new join token (the raw "hfj1..." text).
cl_token() {
	local out
	out=$(cl_ctl --json cluster token create ${1:+--ttl "$1"}) || return 1
	python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])' <<<"$out"
}

# cl_ca_sha256: the CA fingerprint the box prints with a token.
cl_ca_sha256() {
	cl_ctl --json cluster token create --ttl 60 |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["ca_sha256"])'
}

# cl_join ADDR:JOIN_PORT TOKEN FP NAME IQN DIR: run holdfast-agent join; its output goes to
# stdout, its exit status is returned.
cl_join() {
	"$CL_AGENT" join "$1" "$2" --ca-sha256 "$3" --name "$4" --initiator "$5" --state-dir "$6" 2>&1
}

# cl_bg VAR LOG COMMAND...: run a command in its own session (so cleanup stops it and all it
# forks); VAR gets its pid, which is also its session and process group id.
cl_bg() {
	local var=$1 log=$2 _cl_pid
	shift 2
	setsid "$@" >"$log" 2>&1 </dev/null &
	_cl_pid=$!
	disown "$_cl_pid"
	HF_PIDS+=("$_cl_pid")
	printf -v "$var" '%s' "$_cl_pid"
}

# cl_run_agent VAR DIR BOX_ADDR:AGENT_PORT HB MISS MARKER LOG: run an agent whose fence action
# appends the wall-clock time to MARKER.
cl_run_agent() {
	cl_bg "$1" "$7" "$CL_AGENT" run --state-dir "$2" --box "$3" --heartbeat-ms "$4" \
		--miss-threshold "$5" --fence-action "exec:date +%s.%N >>$6"
}

# cl_status: the status JSON.
cl_status() { cl_ctl --json cluster status; }

# cl_q EXPR: evaluate a Python expression over the status JSON (bound to s); prints it.
cl_q() {
	cl_status | python3 -c "
import json, sys
s = json.load(sys.stdin)
h = {x['name']: x for x in s.get('hosts', [])}
print($1)"
}

# cl_true EXPR: true when the Python expression over the status is True.
cl_true() { [ "$(cl_q "$1" 2>/dev/null)" = True ]; }

# cl_wait_q EXPR TIMEOUT_S: wait until the Python expression over the status is True.
cl_wait_q() {
	local expr=$1 t=${2:-10} i
	for ((i = 0; i < t * 20; i++)); do
		[ "$(cl_q "$expr" 2>/dev/null)" = True ] && return 0
		sleep 0.05
	done
	hf_log "timeout waiting for: $expr"
	return 1
}

# cl_wait_log FILE REGEX TIMEOUT_S: wait until an extended regex matches a line of FILE.
cl_wait_log() {
	local f=$1 re=$2 t=${3:-10} i
	for ((i = 0; i < t * 20; i++)); do
		grep -Eq "$re" "$f" 2>/dev/null && return 0
		sleep 0.05
	done
	hf_log "timeout waiting for /$re/ in $f"
	return 1
}

# cl_log_ms FILE REGEX: wall-clock ms (today, UTC) of the first log line matching REGEX; the
# daemons and the agent start their lines with HH:MM:SS.mmm in UTC.
cl_log_ms() {
	python3 - "$1" "$2" <<'PY'
import datetime, re, sys
pat = re.compile(sys.argv[2])
today = datetime.datetime.now(datetime.timezone.utc).date()
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"(\d\d):(\d\d):(\d\d)\.(\d\d\d) ", line)
    if m and pat.search(line):
        h, mi, s, ms = map(int, m.groups())
        t = datetime.datetime(today.year, today.month, today.day, h, mi, s, ms * 1000,
                              tzinfo=datetime.timezone.utc)
        print(int(t.timestamp() * 1000))
        sys.exit(0)
sys.exit(1)
PY
}

# cl_event_ms KIND HOST [N]: wall-clock ms of the N-th (default last) event of that kind for
# that host in the status JSON.
cl_event_ms() {
	cl_q "[e['time_ms'] for e in s['events'] if e['kind'] == '$1' and e['host'] == '$2'][${3:--1}]"
}

# cl_bring_up HOST IQN [PIDVAR]: enrol HOST (state folder $HF_WORK/HOST) through the join port
# 127.0.0.1:$JPORT with a fresh token and the CA fingerprint $FP, run its agent against
# 127.0.0.1:$APORT with $HB/$MISS (log $HF_WORK/agent-HOST.log), and wait until the box holds
# it live. PIDVAR (default CL_AGENT_PID) receives the agent's pid.
cl_bring_up() {
	local out
	out=$(cl_join "127.0.0.1:$JPORT" "$(cl_token 60)" "$FP" "$1" "$2" "$HF_WORK/$1") ||
		hf_die "join of $1 failed: $out"
	cl_run_agent "${3:-CL_AGENT_PID}" "$HF_WORK/$1" "127.0.0.1:$APORT" "$HB" "$MISS" \
		"$HF_WORK/$1.fenced" "$HF_WORK/agent-$1.log"
	cl_wait_q "h['$1']['state'] == 'live'" 10 || hf_die "$1 did not become live"
}

# cl_vd ARGS...: holdfastctl --json ARGS; the answer goes to $HF_WORK/last.json (stderr to
# last.err) and is logged; returns (and leaves in VD_RC) holdfastctl's exit status.
cl_vd() {
	cl_ctl --json "$@" >"$HF_WORK/last.json" 2>"$HF_WORK/last.err"
	VD_RC=$?
	hf_log "holdfastctl $* -> $VD_RC: $(tr -d '\n ' <"$HF_WORK/last.json" | cut -c1-300)"
	return $VD_RC
}

# cl_j EXPR: evaluate a Python expression over the last answer cl_vd kept (bound to r).
cl_j() { python3 -c "import json,sys; r=json.load(open('$HF_WORK/last.json')); print($1)"; }
