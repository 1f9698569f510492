#!/usr/bin/env bash
# holdfastctl pr show / pr clear against a live holdfastd.
#
# Initiator A registers a key with APTPL and reserves Write Exclusive - Registrants Only, then
# keeps its session open; initiator B registers a key and logs out (its registration stays
# with the LUN). `pr show` must name both with their TransportIDs, relative target port ids
# and keys, A as the holder, the type, the scope, APTPL and the PRgeneration, as a table and as
# JSON. `pr clear` must drop it all, A's next command must see RESERVATIONS PREEMPTED
# (06/2A/03), and the target's log must say who cleared what. Usage errors exit 2 and unknown
# targets or LUNs exit 1.
#
# usage: test_ctl_pr.sh BUILD_DIR
. "$(dirname "$0")/lib.sh"

BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
TOOL=$BUILD/tests/pr_register
[ -x "$TOOL" ] || hf_die "$TOOL is not built (libiscsi-dev missing?)"
[ -x "$BUILD/holdfastctl" ] || hf_die "$BUILD/holdfastctl is not built"
IQN=iqn.2026-11.org.holdfast:ctlpr
INIT_A=iqn.2026-11.org.holdfast:ctlpr-node-a
INIT_B=iqn.2026-11.org.holdfast:ctlpr-node-b
CONF=$HF_WORK/holdfastd.conf
LOG=$HF_WORK/daemon.log

hf_free_port PORT
hf_write_config "$CONF" "$HF_WORK/data" "$IQN" "$PORT" file:16M:512 memory:8M
URL=iscsi://127.0.0.1:$PORT/$IQN/0
hf_start_holdfastd SID "$BUILD" "$CONF" "$LOG"
hf_wait_port "$PORT" "$SID" "$LOG"

ctl() { "$BUILD/holdfastctl" -c "$CONF" "$@"; }

# expect_rc RC DESCRIPTION COMMAND...: the command must exit with RC.
expect_rc() {
	local want=$1 what=$2 rc=0
	shift 2
	"$@" >"$HF_WORK/out" 2>&1 || rc=$?
	if [ "$rc" -ne "$want" ]; then
		sed 's/^/    | /' "$HF_WORK/out" >&2
		hf_die "$what: exit $rc, expected $want"
	fi
	hf_log "ok: $what (exit $rc)"
}

# json_check JSON_FILE PYTHON_EXPRESSION...: each expression, evaluated with the parsed
# answer as `j`, must be true.
json_check() {
	local file=$1
	shift
	python3 - "$file" "$@" <<'EOF' || hf_die "JSON check failed on $file"
import json, sys
with open(sys.argv[1]) as f:
    j = json.load(f)
bad = 0
for expr in sys.argv[2:]:
    try:
        ok = eval(expr, {"j": j})
    except Exception as e:
        ok = False
        expr += f" ({e!r})"
    if not ok:
        print(f"    false: {expr}", file=sys.stderr)
        bad += 1
if bad:
    print(json.dumps(j, indent=2), file=sys.stderr)
    sys.exit(1)
EOF
}

# The usage and lookup errors scripts branch on.
expect_rc 2 "pr without a LUN is a usage error" ctl pr show "$IQN"
expect_rc 2 "pr with a LUN that is not a number is a usage error" ctl pr show "$IQN" zero
expect_rc 2 "pr with a negative LUN is a usage error" ctl pr show "$IQN" -1
expect_rc 2 "an unknown pr subcommand is a usage error" ctl pr drop "$IQN" 0
expect_rc 1 "an unknown target is the daemon's error" ctl pr show iqn.2026-11.org.holdfast:nope 0
grep -q "unknown target" "$HF_WORK/out" || hf_die "no reason given for the unknown target"
expect_rc 1 "an unknown LUN is the daemon's error" ctl pr show "$IQN" 7
grep -q "has no LUN 7" "$HF_WORK/out" || hf_die "no reason given for the unknown LUN"
expect_rc 1 "clearing an unknown LUN is the daemon's error" ctl pr clear "$IQN" 7
expect_rc 3 "an absent daemon is unreachable" "$BUILD/holdfastctl" -s "$HF_WORK/none.sock" \
	pr show "$IQN" 0

# A LUN nobody registered with.
expect_rc 0 "pr show of an untouched LUN" ctl pr show "$IQN" 0
grep -q "^reservation:  none" "$HF_WORK/out" || hf_die "an untouched LUN shows a reservation"
grep -q "^registrants:  none" "$HF_WORK/out" || hf_die "an untouched LUN shows registrants"
ctl --json pr show "$IQN" 0 >"$HF_WORK/empty.json"
json_check "$HF_WORK/empty.json" 'j["generation"] == 0' 'j["reservation"] is None' \
	'j["registrants"] == []' 'j["aptpl"] is False' 'j["lun"] == 0' "j['target'] == '$IQN'"

# Initiator B: key 0xb2, no reservation, logs out at once. It registers first because the
# APTPL bit of the last REGISTER decides for the whole LUN (spc4r37 5.13.5) and A's sets it.
"$TOOL" "$URL" "$INIT_B" 0xb2 || hf_die "initiator B did not register"
# Initiator A: key 0xa1, APTPL, Write Exclusive - Registrants Only (type 5), session held.
coproc NODE_A { exec "$TOOL" "$URL" "$INIT_A" 0xa1 --aptpl --type 5 --hold 2>"$HF_WORK/a.err"; }
A_OUT=${NODE_A[0]}
A_IN=${NODE_A[1]}
A_PID=$NODE_A_PID
read -r -t 30 line <&"$A_OUT" || { cat "$HF_WORK/a.err" >&2; hf_die "initiator A did not register"; }
[ "$line" = ready ] || hf_die "initiator A said '$line'"

# A's initiator port name, as the target saw it at login.
ctl --json sessions >"$HF_WORK/sessions.json"
A_ISID=$(python3 -c '
import json, sys
s = [x for x in json.load(open(sys.argv[1]))["sessions"] if x["initiator"] == sys.argv[2]]
print(s[0]["isid"] if len(s) == 1 else "")' "$HF_WORK/sessions.json" "$INIT_A")
[ -n "$A_ISID" ] || hf_die "initiator A's session is not listed"
A_PORT="$INIT_A,i,0x$A_ISID"

# Table for people.
expect_rc 0 "pr show with two registrants" ctl pr show "$IQN" 0
sed 's/^/    | /' "$HF_WORK/out" >&2
for want in "^PRgeneration: 2$" "^APTPL:        yes$" \
	"^reservation:  Write Exclusive - Registrants Only (type 5, WE_RO), scope LU$" \
	"^holder:       $A_PORT on relative target port 1, key 0x00000000000000a1$" \
	"^registrants:  2$" "^0x00000000000000a1 yes    1       no        $A_PORT$" \
	"^0x00000000000000b2 no     1       no        $INIT_B,i,0x"; do
	grep -q -- "$want" "$HF_WORK/out" || hf_die "pr show lacks /$want/"
done

# JSON for scripts, the TransportIDs decoded as spc4r37 7.6.4.6 lays them out.
ctl --json pr show "$IQN" 0 >"$HF_WORK/show.json"
json_check "$HF_WORK/show.json" \
	'j["generation"] == 2' 'j["aptpl"] is True' \
	'j["reservation"]["type"] == "WE_RO"' 'j["reservation"]["type_code"] == 5' \
	'j["reservation"]["scope"] == "LU"' 'j["reservation"]["all_registrants"] is False' \
	"j['reservation']['holder']['initiator_port'] == '$A_PORT'" \
	'j["reservation"]["holder"]["key"] == "0x00000000000000a1"' \
	'j["reservation"]["holder"]["rel_tgt_port"] == 1' \
	'len(j["registrants"]) == 2' \
	"[r['key'] for r in j['registrants'] if r['holder']] == ['0x00000000000000a1']" \
	"{r['initiator'] for r in j['registrants']} == {'$INIT_A', '$INIT_B'}" \
	"[r['isid'] for r in j['registrants'] if r['initiator'] == '$INIT_A'] == ['$A_ISID']" \
	'all(r["rel_tgt_port"] == 1 and r["all_tg_pt"] is False for r in j["registrants"])' \
	'all(bytes.fromhex(r["transport_id"])[0] == 0x45 for r in j["registrants"])' \
	'all(len(r["transport_id"]) % 8 == 0 and len(r["transport_id"]) >= 48 for r in j["registrants"])' \
	'all(int(r["transport_id"][4:8], 16) == len(r["transport_id"]) // 2 - 4 for r in j["registrants"])' \
	'all(bytes.fromhex(r["transport_id"])[4:].rstrip(b"\0").decode() == r["initiator_port"] for r in j["registrants"])'

# The other LUN is untouched: the state is per LUN.
ctl --json pr show "$IQN" 1 >"$HF_WORK/lun1.json"
json_check "$HF_WORK/lun1.json" 'j["registrants"] == []' 'j["lun"] == 1'

# The administrator's clear.
expect_rc 0 "pr clear" ctl pr clear "$IQN" 0
sed 's/^/    | /' "$HF_WORK/out" >&2
grep -q "2 registrations and the reservation dropped; PRgeneration now 3" "$HF_WORK/out" ||
	hf_die "pr clear does not say what it dropped"

# A's next command reports the preemption (spc4r37 5.13.11.2 via the clear's unit attention).
echo go >&"$A_IN"
read -r -t 30 line <&"$A_OUT" || { cat "$HF_WORK/a.err" >&2; hf_die "initiator A did not answer"; }
[ "$line" = "CHECK CONDITION 06/2a/03" ] ||
	hf_die "initiator A's next command got '$line', not RESERVATIONS PREEMPTED (06/2a/03)"
hf_log "ok: initiator A saw RESERVATIONS PREEMPTED"
wait "$A_PID" 2>/dev/null || true

ctl --json pr show "$IQN" 0 >"$HF_WORK/after.json"
json_check "$HF_WORK/after.json" 'j["registrants"] == []' 'j["reservation"] is None' \
	'j["generation"] == 3'

# The log names the clear, the LUN and who asked: uid and pid from the kernel, the user as a
# claim. A second clear of an empty LUN succeeds and changes nothing.
grep -E "persistent reservations cleared by control client uid $(id -u) pid [0-9]+ .*for $IQN LUN 0" \
	"$LOG" >&2 || { sed 's/^/    | /' "$LOG" >&2; hf_die "the target did not log the clear"; }
expect_rc 0 "pr clear of an empty LUN" ctl --json pr clear "$IQN" 0
json_check "$HF_WORK/out" 'j["registrations_dropped"] == 0' 'j["generation"] == 3'

hf_log "PASS"
