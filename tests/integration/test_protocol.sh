#!/usr/bin/env bash
# Protocol-level tests of holdfastd's iSCSI target with a raw Python initiator
# (tests/integration/iscsi_raw.py): PDUs real initiators never send, login failures, MC/S,
# task management. The tests themselves are in test_protocol.py.
#
# usage: test_protocol.sh BUILD_DIR [TEST_NAME_SUBSTRING...]
. "$(dirname "$0")/lib.sh"

BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
shift
HERE=$(cd "$(dirname "$0")" && pwd)
PFX=iqn.2026-11.org.holdfast

hf_free_port P1
hf_free_port P2
DATA=$HF_WORK/data
mkdir -p "$DATA"
CONF=$HF_WORK/holdfastd.conf
# One target per behaviour family, each on its own memory LUN, so a LUN reset or a CHAP rule
# in one test cannot disturb another.
cat >"$CONF" <<CFG
data_dir = "$DATA";
control_socket = "$DATA/holdfastd.sock";
workers = 2;
log_level = "info";
portals = ( { name = "p1"; address = "127.0.0.1"; port = $P1; tpgt = 1; },
            { name = "p2"; address = "127.0.0.1"; port = $P2; tpgt = 2; } );
backstores = ( { name = "open0"; type = "memory"; size = "16M"; },
               { name = "acl0"; type = "memory"; size = "1M"; },
               { name = "chap0"; type = "memory"; size = "1M"; },
               { name = "mutual0"; type = "memory"; size = "1M"; },
               { name = "tmf0"; type = "memory"; size = "16M"; } );
targets = (
  { iqn = "$PFX:open"; alias = "open"; luns = ( { id = 0; backstore = "open0"; } ); },
  { iqn = "$PFX:acl"; luns = ( { id = 0; backstore = "acl0"; } );
    acl = [ "$PFX:allowed" ]; },
  { iqn = "$PFX:chap"; luns = ( { id = 0; backstore = "chap0"; } );
    chap = ( { user = "chapuser"; secret = "chap-secret-1"; } ); },
  { iqn = "$PFX:mutual"; luns = ( { id = 0; backstore = "mutual0"; } );
    chap = ( { user = "mutualuser"; secret = "mutual-init-1"; } );
    mutual_chap = { user = "holdfastbox"; secret = "mutual-target-1"; }; },
  { iqn = "$PFX:tmf"; luns = ( { id = 0; backstore = "tmf0"; } ); }
);
CFG
LOG=$HF_WORK/holdfastd.log
hf_start_holdfastd SID "$BUILD" "$CONF" "$LOG"
hf_wait_port "$P1" "$SID" "$LOG"
hf_wait_port "$P2" "$SID" "$LOG"
hf_log "holdfastd on 127.0.0.1:$P1 and :$P2 (work folder $HF_WORK)"

rc=0
PYTHONDONTWRITEBYTECODE=1 HF_PROTO_PORT1=$P1 HF_PROTO_PORT2=$P2 HF_PROTO_PREFIX=$PFX HF_PROTO_LOG=$LOG \
	timeout 600 python3 "$HERE/test_protocol.py" "$@" || rc=$?
if [ -z "$(hf_session_pids "$SID")" ]; then
	hf_log "holdfastd exited during the run; its log:"
	sed 's/^/    | /' "$LOG" >&2 || true
	rc=1
fi
[ "$rc" -eq 0 ] || { hf_log "holdfastd log tail:"; tail -n 40 "$LOG" | sed 's/^/    | /' >&2; }
exit "$rc"
