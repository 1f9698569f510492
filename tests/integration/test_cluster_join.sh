#!/usr/bin/env bash
# Joining the cluster (issue 4, acceptance 4): a good token enrols a host, whose agent then
# holds a lease on the agent port; an expired, a reused and a forged token are each refused
# with a clear message on the host and a refusal in the box's log and event list; a TLS
# connection to the agent port without a client certificate is refused.
#
# usage: test_cluster_join.sh BUILD_DIR
. "$(dirname "$0")/lib.sh"
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
. "$HF_LIB_DIR/cluster_lib.sh"

hf_free_port PORT
hf_free_port APORT
hf_free_port JPORT
LOG=$HF_WORK/holdfastd.log
cl_config "$HF_WORK/holdfastd.conf" "$HF_WORK/data" 127.0.0.1 "$PORT" "$APORT" "$JPORT" 200 5 \
	false h1 h2 h3 h4
cl_start_box "$HF_WORK/holdfastd.conf" "$LOG" "$PORT"
hf_wait_port "$JPORT" "$CL_SID" "$LOG"
JOIN=127.0.0.1:$JPORT
FP=$(cl_ca_sha256)
hf_log "CA sha256 $FP"

# A refused join: non-zero exit, the host's message names the reason, the box logs it.
refused() { # refused NAME OUTPUT_FILE RC HOST_REGEX BOX_REGEX
	local what=$1 out=$2 rc=$3 hre=$4 bre=$5
	hf_log "$what: agent exit $rc: $(tr '\n' ' ' <"$out")"
	cl_check "$what: the agent exits non-zero" test "$rc" -ne 0
	cl_check "$what: the host is told why ($hre)" grep -Eqi "$hre" "$out"
	cl_check "$what: the box logs the refusal ($bre)" cl_wait_log "$LOG" "$bre" 5
}

# 1. A good token.
TOK=$(cl_token 600)
hf_log "token $TOK"
rc=0
cl_join "$JOIN" "$TOK" "$FP" h1 iqn.2026-11.org.holdfast:h1 "$HF_WORK/a1" >"$HF_WORK/join1.out" || rc=$?
hf_log "good token: exit $rc: $(tr '\n' ' ' <"$HF_WORK/join1.out")"
cl_check "good token: joined" test "$rc" -eq 0
cl_check "good token: the agent stored its key, certificate and the CA" \
	test -s "$HF_WORK/a1/host.key" -a -s "$HF_WORK/a1/host.crt" -a -s "$HF_WORK/a1/ca.crt"
cl_check "good token: the box lists h1 with its IQN" \
	cl_wait_q "'iqn.2026-11.org.holdfast:h1' in h['h1']['iqns']" 5
cl_check "good token: a 'joined' event" cl_wait_q "any(e['kind'] == 'joined' and e['host'] == 'h1' for e in s['events'])" 5
cl_run_agent A1 "$HF_WORK/a1" "127.0.0.1:$APORT" 200 5 "$HF_WORK/fence1" "$HF_WORK/agent1.log"
cl_check "good token: the agent's certificate is accepted on the agent port (lease ok)" \
	cl_wait_log "$HF_WORK/agent1.log" 'lease ok' 10

# 2. The same token again, for another host.
rc=0
cl_join "$JOIN" "$TOK" "$FP" h2 iqn.2026-11.org.holdfast:h2 "$HF_WORK/a2" >"$HF_WORK/reuse.out" || rc=$?
refused "reused token" "$HF_WORK/reuse.out" "$rc" 'used|replay' 'token .*already used'
cl_check "reused token: h2 stays not joined" cl_true "h['h2']['state'] == 'not joined'"

# 3. An expired token: one second of life, used after two.
TOK_EXP=$(cl_token 1)
sleep 2.2
rc=0
cl_join "$JOIN" "$TOK_EXP" "$FP" h2 iqn.2026-11.org.holdfast:h2 "$HF_WORK/a2" >"$HF_WORK/expired.out" || rc=$?
refused "expired token" "$HF_WORK/expired.out" "$rc" 'expired' 'token .*expired'

# 4. A forged token: the id of a live token, one hex digit of its secret changed.
TOK_OK=$(cl_token 600)
last=${TOK_OK: -1}
case $last in 0) new=1 ;; *) new=0 ;; esac
FORGED=${TOK_OK%?}$new
hf_log "live token $TOK_OK, forged $FORGED"
rc=0
cl_join "$JOIN" "$FORGED" "$FP" h3 iqn.2026-11.org.holdfast:h3 "$HF_WORK/a3" >"$HF_WORK/forged.out" || rc=$?
refused "forged token" "$HF_WORK/forged.out" "$rc" 'refused|forged|invalid|unknown' 'token .*forged'
# The forgery must not have spent the real token: its owner still joins with it.
rc=0
cl_join "$JOIN" "$TOK_OK" "$FP" h3 iqn.2026-11.org.holdfast:h3 "$HF_WORK/a3" >"$HF_WORK/after-forged.out" || rc=$?
cl_check "forged token: the real token still works afterwards (exit $rc)" test "$rc" -eq 0

cl_check "the refusals are in the event list (reused, expired, forged)" cl_true \
	"sum(1 for e in s['events'] if e['kind'] == 'refused' and 'token' in e['text']) >= 3"

# 5. TLS to the agent port without a client certificate.
rc=0
python3 - 127.0.0.1 "$APORT" >"$HF_WORK/nocert.out" 2>&1 <<'PY' || rc=$?
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
try:
    t = ctx.wrap_socket(s)
    # TLS 1.2: the handshake ends with the server's Finished, which a box that refuses the
    # missing certificate never sends. Read anyway, in case a refusal comes late.
    t.settimeout(3)
    data = t.recv(1)
    print("handshake completed, read %r" % data)
    sys.exit(0 if data else 3)
except (ssl.SSLError, ConnectionError, socket.timeout, OSError) as e:
    print("refused: %s" % e)
    sys.exit(1)
PY
hf_log "TLS without a client certificate: $(cat "$HF_WORK/nocert.out")"
cl_check "no client certificate: the handshake is refused" test "$rc" -eq 1
cl_check "no client certificate: the box logs it" \
	cl_wait_log "$LOG" 'presented no certificate|no client certificate|handshake refused' 5
if command -v openssl >/dev/null; then
	rc=0
	timeout 10 openssl s_client -connect "127.0.0.1:$APORT" -tls1_2 </dev/null \
		>"$HF_WORK/s_client.out" 2>&1 || rc=$?
	hf_log "openssl s_client: exit $rc: $(grep -Ei 'alert|error|Verify return' "$HF_WORK/s_client.out" | head -3 | tr '\n' ' ')"
	cl_check "no client certificate (openssl s_client): no session" \
		bash -c "[ $rc -ne 0 ] || ! grep -q 'Master-Key: [0-9A-F]' '$HF_WORK/s_client.out'"
fi
cl_check "the agent with its certificate still holds its lease" \
	cl_wait_q "h['h1']['state'] == 'live' and h['h1']['leased']" 3

hf_log "box log, refusals:"
grep -Ei 'refus' "$LOG" | sed 's/^/    | /' >&2 || true
[ "$cl_fail" = 0 ] || hf_die "cluster join: failures above; logs in $HF_WORK"
hf_log "cluster join: all checks passed"
