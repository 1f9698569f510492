# shellcheck shell=bash
# Shared helpers for the integration tests and the benchmark: per-run ports, config files,
# daemons started in their own session and always stopped on exit. Source it with
# `. "$(dirname "$0")/lib.sh"` (bash only). Set HF_KEEP=1 to keep the work folder.

set -euo pipefail

export HF_LIB_DIR
HF_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HF_PORT_CLAIMS=${TMPDIR:-/tmp}/holdfast-ports
HF_WORK=$(mktemp -d "${TMPDIR:-/tmp}/holdfast-test.XXXXXX")
HF_PIDS=()       # session leaders we started; each is stopped with its whole session
HF_PORTS=()      # ports we claimed
HF_LOGS=()       # daemon logs, dumped when a wait fails
HF_TGT_CPORTS=() # tgtd control ports, for a clean shutdown

hf_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
hf_die() {
	hf_log "FAIL: $*"
	exit 1
}

# All processes of a session we started, found by session id so children that were forked
# (and maybe re-grouped) are found too, plus any descendants that left the session.
hf_session_pids() {
	local sid=$1 out p
	out=$(ps -eo pid=,sid= | awk -v s="$sid" '$2 == s { print $1 }')
	local queue=() all=() c
	[ -z "$out" ] || mapfile -t queue <<<"$out"
	all=("${queue[@]}")
	while ((${#queue[@]})); do
		p=${queue[0]}
		queue=("${queue[@]:1}")
		for c in $(pgrep -P "$p" 2>/dev/null || true); do
			case " ${all[*]} " in *" $c "*) ;; *) all+=("$c") queue+=("$c") ;; esac
		done
	done
	echo "${all[@]}"
}

# Stop a session: SIGTERM to everything, then SIGKILL to what is left after a grace period.
hf_stop_session() {
	local sid=$1 grace=${2:-5} pids i
	pids=$(hf_session_pids "$sid")
	[ -n "$pids" ] || return 0
	kill -TERM $pids 2>/dev/null || true
	for ((i = 0; i < grace * 10; i++)); do
		pids=$(hf_session_pids "$sid")
		[ -n "$pids" ] || return 0
		sleep 0.1
	done
	kill -KILL $pids 2>/dev/null || true
}

# kill -9 every process of the session in one go: the process group first (one signal the
# kernel delivers to all its members atomically), then any straggler outside the group.
hf_kill9_session() {
	local sid=$1 pids
	pids=$(hf_session_pids "$sid")
	kill -KILL -- "-$sid" 2>/dev/null || true
	[ -n "$pids" ] && kill -KILL $pids 2>/dev/null || true
	for _ in $(seq 50); do
		[ -n "$(hf_session_pids "$sid")" ] || return 0
		sleep 0.1
	done
	hf_log "warning: session $sid still has processes after SIGKILL"
}

hf_cleanup() {
	local rc=$? sid p
	set +e
	for p in "${HF_TGT_CPORTS[@]}"; do
		tgtadm -C "$p" --op delete --mode system >/dev/null 2>&1
	done
	for sid in "${HF_PIDS[@]}"; do
		hf_stop_session "$sid" 3
	done
	for p in "${HF_PORTS[@]}"; do
		rm -rf "${HF_PORT_CLAIMS:?}/${p:?}"
	done
	if [ "$rc" -ne 0 ] || [ -n "${HF_KEEP:-}" ]; then
		hf_log "work folder kept: $HF_WORK"
	else
		rm -rf "$HF_WORK"
	fi
	exit "$rc"
}
trap hf_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# hf_free_port VAR: set VAR to a TCP port that is free on 127.0.0.1 and claimed for this run. Ports come from
# 10000-32767, below Linux's ephemeral range, so client sockets never take them; a claim is a
# folder made with mkdir (atomic) holding the owner's pid, so parallel runs never share a port
# and a crashed run's claims are taken over.
hf_free_port() {
	local _hf_p
	mkdir -p "$HF_PORT_CLAIMS"
	_hf_p=$(python3 - "$HF_PORT_CLAIMS" "$$" <<'EOF'
import os, random, socket, sys
claims, owner = sys.argv[1], sys.argv[2]
def alive(pid):
    try:
        os.kill(int(pid), 0)
        return True
    except (OSError, ValueError):
        return False
for _ in range(2000):
    port = random.randrange(10000, 32768)
    d = os.path.join(claims, str(port))
    try:
        os.mkdir(d)
    except FileExistsError:
        try:
            with open(os.path.join(d, "pid")) as f:
                if alive(f.read().strip()):
                    continue
        except OSError:
            continue
    with open(os.path.join(d, "pid"), "w") as f:
        f.write(owner)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    sys.exit(0)
sys.exit("no free port found")
EOF
	) || hf_die "cannot find a free port"
	HF_PORTS+=("$_hf_p")
	printf -v "$1" '%s' "$_hf_p"
}

# True when something accepts TCP connections on 127.0.0.1:$1.
hf_port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# hf_write_config FILE DATA_DIR IQN PORTS LUN...
#   PORTS: comma-separated list; portal N gets tpgt N.
#   LUN:   memory:SIZE  or  file:SIZE[:BLOCK_SIZE]  (LUN ids 0, 1, ... in order).
hf_write_config() {
	local file=$1 data=$2 iqn=$3 ports=$4 i=0 n=0 spec type size bs
	shift 4
	local portals="" names="" backstores="" luns=""
	IFS=, read -r -a plist <<<"$ports"
	for p in "${plist[@]}"; do
		i=$((i + 1))
		portals+="${portals:+, }{ name = \"p$i\"; address = \"127.0.0.1\"; port = $p; tpgt = $i; }"
		names+="${names:+, }\"p$i\""
	done
	for spec in "$@"; do
		IFS=: read -r type size bs <<<"$spec"
		case $type in
		memory) backstores+="${backstores:+, }{ name = \"bs$n\"; type = \"memory\"; size = \"$size\"; }" ;;
		file) backstores+="${backstores:+, }{ name = \"bs$n\"; type = \"file\"; path = \"bs$n.img\"; size = \"$size\"; block_size = ${bs:-512}; }" ;;
		*) hf_die "hf_write_config: bad LUN spec $spec" ;;
		esac
		luns+="${luns:+, }{ id = $n; backstore = \"bs$n\"; }"
		n=$((n + 1))
	done
	mkdir -p "$data"
	cat >"$file" <<EOF
data_dir = "$data";
control_socket = "$data/holdfastd.sock";
workers = ${HF_WORKERS:-2};
portals = ( $portals );
backstores = ( $backstores );
targets = ( { iqn = "$iqn"; portals = [ $names ]; luns = ( $luns ); } );
EOF
}

# hf_start_holdfastd VAR BUILD_DIR CONFIG LOG: start the daemon in its own session (so every
# process it forks can be found and killed); VAR gets its pid, which is also the session id.
hf_start_holdfastd() {
	local var=$1 build=$2 conf=$3 log=$4 _hf_pid
	[ -x "$build/holdfastd" ] || hf_die "$build/holdfastd is not built"
	setsid "$build/holdfastd" -c "$conf" >>"$log" 2>&1 </dev/null &
	disown $!
	_hf_pid=$!
	HF_PIDS+=("$_hf_pid")
	HF_LOGS+=("$log")
	printf -v "$var" '%s' "$_hf_pid"
}

# hf_wait_port PORT PID LOG [TIMEOUT]: wait until the daemon accepts connections; fail with
# its log if it exits or the timeout passes.
hf_wait_port() {
	local port=$1 pid=$2 log=$3 timeout=${4:-20} i
	for ((i = 0; i < timeout * 10; i++)); do
		hf_port_open "$port" && return 0
		if ! kill -0 "$pid" 2>/dev/null; then
			hf_log "daemon (pid $pid) exited before listening on port $port; its log:"
			sed 's/^/    | /' "$log" >&2 || true
			hf_die "daemon did not start"
		fi
		sleep 0.1
	done
	hf_log "nothing listens on 127.0.0.1:$port after ${timeout}s; daemon log:"
	sed 's/^/    | /' "$log" >&2 || true
	hf_die "timeout waiting for port $port"
}

# hf_start_tgtd VAR BACKING_FILE IQN PORT [PORT2...]: a Debian tgtd with one LUN (LUN 1; tgt
# keeps LUN 0 for its controller) on the given portals. The control socket path is global
# (/var/run/tgtd/socket.N), so the first port doubles as the control port, which keeps
# parallel runs apart. VAR gets the session id.
hf_start_tgtd() {
	local var=$1 backing=$2 iqn=$3 port=$4 cport=$4 _hf_pid log p
	shift 4
	command -v tgtd >/dev/null || hf_die "tgtd is not installed (apt-get install tgt)"
	log=$HF_WORK/tgtd-$port.log
	setsid tgtd -f -C "$cport" --iscsi "portal=127.0.0.1:$port" >"$log" 2>&1 </dev/null &
	disown $!
	_hf_pid=$!
	HF_PIDS+=("$_hf_pid")
	HF_TGT_CPORTS+=("$cport")
	hf_wait_port "$port" "$_hf_pid" "$log" 20
	tgtadm -C "$cport" --lld iscsi --mode target --op new --tid 1 --targetname "$iqn"
	tgtadm -C "$cport" --lld iscsi --mode logicalunit --op new --tid 1 --lun 1 \
		--backing-store "$backing" --bstype "${HF_TGT_BSTYPE:-rdwr}"
	tgtadm -C "$cport" --lld iscsi --mode target --op bind --tid 1 --initiator-address ALL
	for p in "$@"; do
		tgtadm -C "$cport" --lld iscsi --mode portal --op new --param "portal=127.0.0.1:$p"
	done
	printf -v "$var" '%s' "$_hf_pid"
}

# Resident set size of a session's processes, in KiB.
hf_session_rss_kib() {
	local pids
	pids=$(hf_session_pids "$1")
	[ -n "$pids" ] || { echo 0; return; }
	ps -o rss= -p "$(echo $pids | tr ' ' ,)" | awk '{ s += $1 } END { print s + 0 }'
}

# hf_ctl SOCKET JSON: one request on holdfastd's control socket; prints the one-line reply.
hf_ctl() {
	python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode())
buf = b""
while not buf.endswith(b"\n"):
    chunk = s.recv(65536)
    if not chunk:
        break
    buf += chunk
print(buf.decode().strip())
PY
}

# hf_check NAME COMMAND...: run a check, log PASS or FAIL; a failure sets HF_FAILED=1.
HF_FAILED=0
hf_check() {
	local name=$1
	shift
	if "$@"; then
		hf_log "PASS $name"
	else
		hf_log "FAIL $name"
		HF_FAILED=1
	fi
}
