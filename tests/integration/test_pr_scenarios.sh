#!/usr/bin/env bash
# Multi-initiator persistent reservation scenarios (issue 3, acceptance item 3): holdfastd with
# one target on two portals (tpgt 1 and 2) and one memory LUN per scenario; LUN 5 has the
# test-only store delay so that the victim's writes are really in flight when PREEMPT AND ABORT
# arrives. pr_scenarios runs them all and prints a PASS or FAIL line for each.
#
# usage: test_pr_scenarios.sh BUILD_DIR [SCENARIO...]
. "$(dirname "$0")/lib.sh"

BUILD=$(cd "${1:?usage: $0 BUILD_DIR [SCENARIO...]}" && pwd)
shift
PROG=$BUILD/tests/pr_scenarios
[ -x "$PROG" ] || hf_die "$PROG is not built (libiscsi-dev missing?)"
IQN=iqn.2026-11.org.holdfast:prscen
CONF=$HF_WORK/holdfastd.conf
LOG=$HF_WORK/daemon.log

hf_free_port P1
hf_free_port P2
mkdir -p "$HF_WORK/data"
# hf_write_config has no delay option, so the config is written here.
cat >"$CONF" <<CONF
data_dir = "$HF_WORK/data";
control_socket = "$HF_WORK/data/holdfastd.sock";
workers = ${HF_WORKERS:-2};
portals = ( { name = "p1"; address = "127.0.0.1"; port = $P1; tpgt = 1; },
            { name = "p2"; address = "127.0.0.1"; port = $P2; tpgt = 2; } );
backstores = (
  { name = "bs0"; type = "memory"; size = "16M"; },
  { name = "bs1"; type = "memory"; size = "16M"; },
  { name = "bs2"; type = "memory"; size = "16M"; },
  { name = "bs3"; type = "memory"; size = "16M"; },
  { name = "bs4"; type = "memory"; size = "16M"; },
  { name = "bs5"; type = "memory"; size = "16M"; delay_ms = 300; } );
targets = ( { iqn = "$IQN"; portals = [ "p1", "p2" ];
  luns = ( { id = 0; backstore = "bs0"; }, { id = 1; backstore = "bs1"; },
           { id = 2; backstore = "bs2"; }, { id = 3; backstore = "bs3"; },
           { id = 4; backstore = "bs4"; }, { id = 5; backstore = "bs5"; } ); } );
CONF

hf_start_holdfastd SID "$BUILD" "$CONF" "$LOG"
hf_wait_port "$P1" "$SID" "$LOG"
hf_wait_port "$P2" "$SID" "$LOG"
hf_log "holdfastd on 127.0.0.1:$P1 (tpgt 1) and 127.0.0.1:$P2 (tpgt 2)"

if ! "$PROG" "127.0.0.1:$P1" "127.0.0.1:$P2" "$IQN" "$@"; then
	hf_log "daemon log:"
	sed 's/^/    | /' "$LOG" >&2 || true
	hf_die "persistent reservation scenarios failed"
fi
hf_log "all persistent reservation scenarios passed"
