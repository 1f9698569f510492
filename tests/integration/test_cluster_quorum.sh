#!/usr/bin/env bash
# Quorum with the box as witness (issue 4, acceptance 3):
#   A. two hosts, wait_for_all off: quorate as soon as one host and the box hold 2 of 3 votes;
#      losing either host keeps the cluster quorate.
#   B. three hosts, wait_for_all on: not quorate with two hosts joined (3 of 4 votes, enough
#      for a majority) until the third has joined once; then quorate; losing one host keeps
#      it quorate (wait_for_all applies only at start); losing two makes it not quorate, with
#      the history and events saying so, and no ownership change is possible (a real
#      transfer and a create are refused for want of quorum).
#
# usage: test_cluster_quorum.sh BUILD_DIR
. "$(dirname "$0")/lib.sh"
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
. "$HF_LIB_DIR/cluster_lib.sh"

HB=200
MISS=5
declare -A AGENT

# start_cluster TAG WAIT_FOR_ALL HOST...: a box in its own data folder; sets JOIN, ABOX, FP.
start_cluster() {
	local tag=$1 wfa=$2
	shift 2
	hf_free_port PORT
	hf_free_port APORT
	hf_free_port JPORT
	LOG=$HF_WORK/holdfastd-$tag.log
	cl_config "$HF_WORK/$tag.conf" "$HF_WORK/data-$tag" 127.0.0.1 "$PORT" "$APORT" "$JPORT" \
		"$HB" "$MISS" "$wfa" "$@"
	cl_start_box "$HF_WORK/$tag.conf" "$LOG" "$PORT"
	hf_wait_port "$JPORT" "$CL_SID" "$LOG"
	JOIN=127.0.0.1:$JPORT
	ABOX=127.0.0.1:$APORT
	FP=$(cl_ca_sha256)
}

# bring_up TAG HOST: join and run its agent; wait until the box holds it live.
bring_up() {
	local tag=$1 h=$2 out pid
	out=$(cl_join "$JOIN" "$(cl_token 60)" "$FP" "$h" "iqn.2026-11.org.holdfast:$tag-$h" \
		"$HF_WORK/$tag-$h") || hf_die "join of $h failed: $out"
	cl_run_agent pid "$HF_WORK/$tag-$h" "$ABOX" "$HB" "$MISS" "$HF_WORK/$tag-$h.fenced" \
		"$HF_WORK/agent-$tag-$h.log"
	AGENT[$tag-$h]=$pid
	cl_wait_q "h['$h']['state'] == 'live'" 10 || hf_die "$h did not become live"
}

# restart TAG HOST: run a lost host's agent again; it rejoins under a new epoch.
restart() {
	local tag=$1 h=$2 pid
	cl_run_agent pid "$HF_WORK/$tag-$h" "$ABOX" "$HB" "$MISS" "$HF_WORK/$tag-$h.fenced" \
		"$HF_WORK/agent-$tag-$h-2.log"
	AGENT[$tag-$h]=$pid
	cl_wait_q "h['$h']['state'] == 'live'" 10 || hf_die "$h did not become live again"
}

# lose TAG HOST: kill its agent; wait until the box declared it lost (once more).
lose() {
	local tag=$1 h=$2 n
	n=$(cl_q "sum(1 for e in s['events'] if e['kind'] == 'lost' and e['host'] == '$h')")
	kill -KILL "${AGENT[$tag-$h]}"
	cl_wait_q "sum(1 for e in s['events'] if e['kind'] == 'lost' and e['host'] == '$h') > $n" 5 ||
		hf_die "$h was not declared lost"
}

votes() { cl_q "'%d of %d votes, %d needed, quorate %s' % (s['quorum']['votes_present'], s['quorum']['votes_total'], s['quorum']['votes_needed'], s['quorum']['quorate'])"; }

# ---- A: two hosts, wait_for_all off ----
start_cluster two false h1 h2
hf_log "A (2 hosts, wait_for_all off), nobody joined: $(votes)"
cl_check "A: not quorate with no host" cl_true "not s['quorum']['quorate']"
bring_up two h1
hf_log "A: h1 joined: $(votes)"
cl_check "A: quorate with h1 and the box (2 of 3), wait_for_all off" cl_true "s['quorum']['quorate']"
bring_up two h2
hf_log "A: h2 joined: $(votes)"
cl_check "A: quorate with both hosts" cl_true "s['quorum']['quorate'] and s['quorum']['votes_present'] == 3"
lose two h2
hf_log "A: h2 lost: $(votes)"
cl_check "A: losing h2 leaves the cluster quorate (h1 + box = 2 of 3)" \
	cl_true "s['quorum']['quorate'] and s['quorum']['votes_present'] == 2 and s['quorum']['votes_needed'] == 2"
cl_check "A: no quorum-lost event" cl_true "not any(e['kind'] == 'quorum_lost' for e in s['events'])"
restart two h2 # it rejoins under a new epoch
lose two h1
hf_log "A: h2 back, h1 lost: $(votes)"
cl_check "A: losing the other host (h1) also leaves it quorate" \
	cl_true "s['quorum']['quorate'] and h['h1']['state'] != 'live' and h['h2']['state'] == 'live'"
hf_stop_session "$CL_SID" 3

# ---- B: three hosts, wait_for_all on ----
start_cluster three true h1 h2 h3
hf_log "B (3 hosts, wait_for_all on), nobody joined: $(votes)"
bring_up three h1
bring_up three h2
hf_log "B: h1 and h2 joined: $(votes)"
cl_check "B: 3 of 4 votes present, a majority by count" \
	cl_true "s['quorum']['votes_present'] == 3 and s['quorum']['votes_needed'] <= 3"
cl_check "B: still not quorate: wait_for_all (h3 never joined)" \
	cl_true "not s['quorum']['quorate'] and s['quorum']['wait_for_all'] and not s['quorum']['wait_for_all_met']"
bring_up three h3
hf_log "B: h3 joined: $(votes)"
cl_check "B: quorate once every host has joined once" \
	cl_true "s['quorum']['quorate'] and s['quorum']['wait_for_all_met']"
cl_check "B: a 'quorum gained' event" cl_true "any(e['kind'] == 'quorum_gained' for e in s['events'])"
cl_check "B: the join is logged before the quorum gain it caused" \
	cl_true "(lambda k: k.index(('joined', 'h3')) < k.index(('quorum_gained', '')))([(e['kind'], e['host']) for e in s['events']])"
mkdir -p "$HF_WORK/pool-q"
cl_check "B: a pool while quorate" cl_vd pool add poolq "$HF_WORK/pool-q"
cl_check "B: a disk while quorate" cl_vd vdisk create poolq vq 16M
VQ=$(cl_j "r['vdisk']['id']")
cl_vd vdisk attach "$VQ" h1 --epoch 1
cl_check "B: h1 owns the disk under epoch 2" [ "$(cl_j "(r['vdisk']['owner'], r['vdisk']['epoch'])")" = "('h1', 2)" ]
lose three h3
hf_log "B: h3 lost: $(votes)"
cl_check "B: losing one host leaves it quorate (3 of 4; wait_for_all is not applied again)" \
	cl_true "s['quorum']['quorate']"
lose three h2
hf_log "B: h2 lost too: $(votes)"
cl_check "B: losing two hosts makes it not quorate (2 of 4, 3 needed)" \
	cl_true "not s['quorum']['quorate'] and s['quorum']['votes_present'] == 2"
cl_check "B: a 'quorum lost' event" cl_true "any(e['kind'] == 'quorum_lost' for e in s['events'])"
cl_check "B: the quorum history ends not quorate" cl_true "not s['quorum']['history'][-1]['quorate']"
hf_log "B: quorum history: $(cl_q "[(x['quorate'], x['reason'], x['host'], x['present']) for x in s['quorum']['history']]")"
hf_log "B: events: $(cl_q "[(e['kind'], e['host']) for e in s['events']]")"

# No ownership change without quorum: the coordinator refuses to move the disk (h1 still
# holds its lease, so only quorum stands in the way) and to make a new one.
cl_vd vdisk transfer "$VQ" h1 h1 --epoch 2 || true
cl_check "B: a transfer is refused while not quorate (no_quorum)" \
	[ "$VD_RC" = 1 -a "$(cl_j "r.get('code')")" = no_quorum ]
cl_vd vdisk create poolq vq2 16M || true
cl_check "B: a create is refused while not quorate (no_quorum)" \
	[ "$VD_RC" = 1 -a "$(cl_j "r.get('code')")" = no_quorum ]
cl_vd vdisk list
cl_check "B: the disk is still h1's under epoch 2" \
	[ "$(cl_j "[(v['owner'], v['epoch']) for v in r['vdisks'] if v['id'] == '$VQ']")" = "[('h1', 2)]" ]
cl_check "B: the surviving host h1 keeps its lease without quorum" cl_true "h['h1']['state'] == 'live'"

[ "$cl_fail" = 0 ] || hf_die "cluster quorum: failures above; logs in $HF_WORK"
hf_log "cluster quorum: all checks passed"
