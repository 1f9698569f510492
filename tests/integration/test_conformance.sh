#!/usr/bin/env bash
# SCSI and iSCSI conformance of holdfastd, judged by libiscsi's iscsi-test-cu.
#
# Starts holdfastd with a memory-backed LUN 0 and a file-backed LUN 1 on two portals (two
# free loopback ports, tpgt 1 and 2), runs the SCSI family against both LUNs, the iSCSI family
# against LUN 0, and the MultipathIO suite over both portals, then classifies every test with
# classify.py. It fails on a failure not in expected-failures.txt or a skip not in
# allowed-skips.txt.
#
# usage: test_conformance.sh BUILD_DIR
#   HF_CONFORMANCE_TARGET=tgt runs the same harness against Debian's tgtd instead, to check
#   the harness itself (tgt fails a few tests and skips many: the run is expected to fail).
. "$(dirname "$0")/lib.sh"

BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
IQN=iqn.2026-11.org.holdfast:conformance
command -v iscsi-test-cu >/dev/null || hf_die "iscsi-test-cu missing (apt-get install libiscsi-bin)"

hf_free_port P1
hf_free_port P2
if [ "${HF_CONFORMANCE_TARGET:-holdfast}" = tgt ]; then
	truncate -s 256M "$HF_WORK/tgt.img"
	hf_start_tgtd SID "$HF_WORK/tgt.img" "$IQN" "$P1" "$P2"
	LUN_MEM=1
	LUN_FILE=1
	WHO=tgt
else
	hf_write_config "$HF_WORK/holdfastd.conf" "$HF_WORK/data" "$IQN" "$P1,$P2" \
		memory:256M file:256M:512
	LOG=$HF_WORK/holdfastd.log
	hf_start_holdfastd SID "$BUILD" "$HF_WORK/holdfastd.conf" "$LOG"
	hf_wait_port "$P1" "$SID" "$LOG"
	hf_wait_port "$P2" "$SID" "$LOG"
	LUN_MEM=0
	LUN_FILE=1
	WHO=holdfast
fi
URL1=iscsi://127.0.0.1:$P1/$IQN
URL2=iscsi://127.0.0.1:$P2/$IQN
hf_log "$WHO on $URL1 and $URL2 (work folder $HF_WORK)"

HERE=$(cd "$(dirname "$0")" && pwd)
# Single-portal runs cannot exercise multipath; that suite has its own run below.
SINGLE_URL_SKIPS=$HF_WORK/single-url-skips.txt
{
	cat "$HERE/allowed-skips.txt"
	echo "MultipathIO.*"
} >"$SINGLE_URL_SKIPS"

status=0
# run LABEL SKIPS_FILE TEST_SPEC URL...
run() {
	local label=$1 skips=$2 spec=$3 log=$HF_WORK/$1.log rc=0
	shift 3
	hf_log "iscsi-test-cu -t $spec $*"
	timeout 1200 iscsi-test-cu -d -v -t "$spec" "$@" >"$log" 2>&1 || rc=$?
	# iscsi-test-cu exits non-zero when a test fails; the classifier decides what counts.
	[ "$rc" -lt 124 ] || hf_log "$label: iscsi-test-cu ended with status $rc (timeout or crash)"
	python3 "$HERE/classify.py" "$log" --label "$WHO $label" --quiet \
		--expected-failures "$HERE/expected-failures.txt" --allowed-skips "$skips" \
		--json "$HF_WORK/$label.json" || status=1
}

run scsi-memory "$SINGLE_URL_SKIPS" SCSI "$URL1/$LUN_MEM"
if [ "$LUN_FILE" != "$LUN_MEM" ]; then
	run scsi-file "$SINGLE_URL_SKIPS" SCSI "$URL1/$LUN_FILE"
fi
run iscsi "$SINGLE_URL_SKIPS" iSCSI "$URL1/$LUN_MEM"
run multipath "$HERE/allowed-skips.txt" SCSI.MultipathIO "$URL1/$LUN_FILE" "$URL2/$LUN_FILE"

if [ -n "$(hf_session_pids "$SID")" ]; then
	:
else
	hf_log "$WHO exited during the run"
	status=1
fi
[ "$status" -eq 0 ] || hf_die "conformance: see the lines above; logs in $HF_WORK"
hf_log "conformance: all runs acceptable"
