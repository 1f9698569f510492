/* libFuzzer target: a sequence of Login Request PDUs, then (once in full feature phase) Text
 * Requests, through iscsi_login_step / iscsi_text_step with a small built-in config.
 *
 * Input: records of [flags:1][ttt_sel:1][len:2 big-endian][len bytes of text]. flags bit 7 is
 * T (or F for text), bit 6 C, bits 3-2 CSG, bits 1-0 NSG; bit 5 sets version_min=1 and bit 4
 * a non-zero TSIH. ttt_sel picks the TTT of a text request (0: reserved, else the last one
 * the target handed out). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/config.h"
#include "lib/log.h"
#include "target/iscsi_login.h"
#include "target/iscsi_text.h"

static struct hf_portal portals[] = {
	{.name = "p4", .address = "127.0.0.1", .port = 3260, .tpgt = 1},
	{.name = "p6", .address = "::1", .port = 3260, .tpgt = 1},
	{.name = "px", .address = "10.0.0.1", .port = 3261, .tpgt = 2},
};
static int open_portals[] = {0, 1};
static int secure_portals[] = {0};
static int other_portals[] = {2};
static char acl[][HF_IQN_MAX] = {"iqn.1994-05.com.example:good"};
static struct hf_chap users[] = {{.user = "alice", .secret = "alicesecret12"}};
static struct hf_chap disc_users[] = {{.user = "disc", .secret = "discsecret123"}};
static struct hf_target targets[] = {
	{.iqn = "iqn.2024-01.org.holdfast:open",
	 .alias = "open disk",
	 .portals = open_portals,
	 .nportals = 2},
	{.iqn = "iqn.2024-01.org.holdfast:secure",
	 .portals = secure_portals,
	 .nportals = 1,
	 .acl = acl,
	 .nacl = 1,
	 .chap = users,
	 .nchap = 1,
	 .mutual = {.user = "tgt", .secret = "targetsecret1"},
	 .has_mutual = 1},
	{.iqn = "iqn.2024-01.org.holdfast:other", .portals = other_portals, .nportals = 1},
};
static struct hf_config cfg = {
	.portals = portals,
	.nportals = 3,
	.targets = targets,
	.ntargets = 3,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int inited;
	struct iscsi_login_state *lg;
	struct iscsi_text_state *ts = NULL;
	struct iscsi_params params;
	uint32_t last_ttt = ISCSI_RSVD_TAG;
	static struct iscsi_kv kv[ISCSI_TEXT_MAX_PAIRS];
	bool prev_cont = false;
	size_t nkv;
	size_t pos = 1;

	if (!inited) {
		log_init("fuzz", LOG_LVL_WARN, 0);
		inited = 1;
	}
	if (size < 1)
		return 0;
	/* The first byte picks discovery CHAP on or off. */
	cfg.discovery_chap = (data[0] & 1) ? disc_users : NULL;
	cfg.ndiscovery_chap = (data[0] & 1) ? 1 : 0;
	if (iscsi_login_create(&cfg, (data[0] & 2) ? 2 : 1, &lg) != 0)
		return 0;

	while (pos + 4 <= size) {
		uint8_t flags = data[pos], sel = data[pos + 1];
		size_t len = (size_t)data[pos + 2] << 8 | data[pos + 3];
		struct iscsi_pdu req;
		uint8_t *seg;

		pos += 4;
		if (len > size - pos)
			len = size - pos;
		/* A private copy so that reads past the segment are caught by ASan. */
		seg = malloc(len ? len : 1);
		if (seg == NULL)
			break;
		memcpy(seg, data + pos, len);
		pos += len;

		memset(&req, 0, sizeof(req));
		req.final = flags & 0x80;
		req.cont = flags & 0x40;
		req.itt = 1;
		if (ts == NULL) {
			struct iscsi_login_rsp rsp;

			req.opcode = ISCSI_OP_LOGIN_REQ;
			req.csg = (flags >> 2) & 3;
			req.nsg = flags & 3;
			req.version_min = (flags & 0x20) ? 1 : 0;
			req.tsih = (flags & 0x10) ? 7 : 0;
			if (iscsi_login_step(lg, &req, seg, (uint32_t)len, &rsp) != 0 ||
			    rsp.close) {
				free(seg);
				break;
			}
			if (rsp.data_len > 8192 || (rsp.transit && rsp.cont))
				abort();
			/* A whole response must itself be valid text without repeated keys. */
			if (!rsp.cont && !prev_cont && rsp.data_len > 0 &&
			    iscsi_text_parse(rsp.data, rsp.data_len, kv, ISCSI_TEXT_MAX_PAIRS,
					     &nkv))
				abort();
			prev_cont = rsp.cont;
			if (rsp.to_ffp) {
				params = *iscsi_login_params(lg);
				if (params.first_burst > params.max_burst)
					abort();
				if (iscsi_text_create(&cfg, (data[0] & 2) ? 2 : 1,
						      iscsi_login_target_index(lg), &params,
						      &ts) != 0) {
					free(seg);
					break;
				}
			}
		} else {
			struct iscsi_text_rsp trsp;

			req.opcode = ISCSI_OP_TEXT_REQ;
			req.ttt = sel ? last_ttt : ISCSI_RSVD_TAG;
			if (iscsi_text_step(ts, &req, seg, (uint32_t)len, &trsp) != 0) {
				free(seg);
				break;
			}
			if (!trsp.reject && trsp.data_len > params.initiator_max_recv_dsl &&
			    trsp.data_len > 8192)
				abort();
			if (trsp.ttt != ISCSI_RSVD_TAG)
				last_ttt = trsp.ttt;
		}
		free(seg);
	}
	iscsi_text_destroy(ts);
	iscsi_login_destroy(lg);
	return 0;
}
