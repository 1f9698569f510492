/* The agent protocol's wire format: every message round-trips, the header's bytes are where the
 * document says, and the decoder refuses (with the right error code) truncated, oversized,
 * duplicated, missing, out-of-range and unknown-critical fields, unknown types and versions. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "csv-coord/agent_proto.h"
#include "lib/cursor.h"

static uint8_t frame[AGENT_PROTO_MAX_FRAME + 64];

static uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)get_be16(p) << 16 | get_be16(p + 2);
}

static uint64_t get_be64(const uint8_t *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}
static char pem_a[AGENT_PEM_MAX + 2];
static char pem_b[AGENT_PEM_MAX + 2];

static void make_pem(char *out, size_t len, char fill)
{
	static const char head[] = "-----BEGIN CERTIFICATE-----\n";

	memset(out, fill, len);
	memcpy(out, head, sizeof(head) - 1);
	out[len - 1] = '\n';
	out[len] = '\0';
}

static void hb_msg(struct agent_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->version = 1;
	m->type = AGENT_MSG_HEARTBEAT;
	m->request_id = 0x01020304;
	m->u.hb.host_id = 7;
	m->u.hb.epoch = 3;
	m->u.hb.seq = 99;
	m->u.hb.send_ns = 123456789012ull;
	m->u.hb.lease_ns = 3910000000ull;
}

static void join_msg(struct agent_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->version = 1;
	m->type = AGENT_MSG_JOIN_REQUEST;
	m->request_id = 1;
	strcpy(m->u.join_req.token_id, "tok-4f2a");
	memset(m->u.join_req.secret, 0xa5, 32);
	m->u.join_req.secret_len = 32;
	strcpy(m->u.join_req.host_name, "kvm1.example.org");
	strcpy(m->u.join_req.iqn[0], "iqn.2026-01.org.example:kvm1");
	strcpy(m->u.join_req.iqn[1], "iqn.2026-01.org.example:kvm1b");
	m->u.join_req.n_iqn = 2;
	make_pem(pem_a, 900, 'A');
	m->u.join_req.csr_pem.p = (const uint8_t *)pem_a;
	m->u.join_req.csr_pem.len = 900;
}

static size_t enc(const struct agent_msg *m)
{
	size_t len = 0;

	assert_int_equal(agent_proto_encode(m, frame, sizeof(frame), &len), 0);
	return len;
}

static int dec(size_t len, struct agent_msg *m, enum agent_err *err)
{
	return agent_proto_decode(frame, len, m, err);
}

/* Raw frames for the negative cases. */
static size_t raw_hdr(uint8_t version, uint8_t type, uint32_t req)
{
	put_be32(frame, AGENT_PROTO_MAGIC);
	frame[4] = version;
	frame[5] = type;
	put_be16(frame + 6, 0);
	put_be32(frame + 8, req);
	put_be32(frame + 12, 0);
	return AGENT_PROTO_HDR_LEN;
}

static size_t raw_tlv(size_t pos, uint16_t tag, const void *v, size_t n)
{
	put_be16(frame + pos, tag);
	put_be16(frame + pos + 2, n);
	memcpy(frame + pos + 4, v, n);
	pos += 4 + n;
	put_be32(frame + 12, pos - AGENT_PROTO_HDR_LEN);
	return pos;
}

static size_t raw_u32(size_t pos, uint16_t tag, uint32_t v)
{
	uint8_t b[4];

	put_be32(b, v);
	return raw_tlv(pos, tag, b, 4);
}

static size_t raw_u64(size_t pos, uint16_t tag, uint64_t v)
{
	uint8_t b[8];

	put_be64(b, v);
	return raw_tlv(pos, tag, b, 8);
}

/* A valid REJOIN_ACK (host id tag 0x20, epoch tag 0x21) to mutate. */
static size_t raw_rejoin_ack(void)
{
	size_t pos = raw_hdr(1, AGENT_MSG_REJOIN_ACK, 5);

	pos = raw_u32(pos, 0x0020, 7);
	return raw_u64(pos, 0x0021, 2);
}

static void test_heartbeat_header_and_fields_are_where_the_document_says(void **state)
{
	struct agent_msg m;
	size_t len;

	hb_msg(&m);
	len = enc(&m);
	/* 16-byte header, then 5 TLVs: one u32 and four u64. */
	assert_int_equal(len, 16 + (4 + 4) + 4 * (4 + 8));
	assert_memory_equal(frame, "HFAG", 4);
	assert_int_equal(frame[4], 1);
	assert_int_equal(frame[5], 0x20);
	assert_int_equal(frame[6] | frame[7], 0);
	assert_memory_equal(frame + 8, "\x01\x02\x03\x04", 4);
	assert_memory_equal(frame + 12, "\x00\x00\x00\x38", 4);
	/* host_id: tag 0x0020, length 4, value 7 */
	assert_memory_equal(frame + 16, "\x00\x20\x00\x04\x00\x00\x00\x07", 8);
}

static void test_every_message_type_round_trips(void **state)
{
	struct agent_msg in[10], out;
	enum agent_err err;
	size_t len;

	memset(in, 0, sizeof(in));
	make_pem(pem_b, 2000, 'B');
	in[0].type = AGENT_MSG_HELLO;
	in[0].u.hello = (struct agent_hello){1, 1, AGENT_CAP_LEASE | AGENT_CAP_WATCHDOG,
					     AGENT_ROLE_AGENT, "holdfast-agent 0.1"};
	in[1].type = AGENT_MSG_HELLO_ACK;
	in[1].u.hello_ack = (struct agent_hello_ack){
		1, 3, AGENT_CAP_LEASE, 1, AGENT_CAP_LEASE, "", {500000000, 3, 1550000000, 10000}};
	agent_proto_make_error(&in[2], 0, AGENT_E_TOKEN_EXPIRED, AGENT_MSG_JOIN_REQUEST,
			       "token tok-1 expired 30 s ago");
	join_msg(&in[3]);
	in[4].type = AGENT_MSG_JOIN_RESPONSE;
	in[4].u.join_resp.host_id = 3;
	in[4].u.join_resp.epoch = 1;
	in[4].u.join_resp.cert_pem = (struct agent_blob){(const uint8_t *)pem_b, 2000};
	in[4].u.join_resp.ca_pem = (struct agent_blob){(const uint8_t *)pem_b, 1500};
	hb_msg(&in[5]);
	in[6].type = AGENT_MSG_HEARTBEAT_ACK;
	in[6].u.hb_ack = (struct agent_heartbeat_ack){7, 3, 99, 5100000000ull, 1, 1, 0};
	in[7].type = AGENT_MSG_FENCED;
	in[7].u.fenced.host_id = 7;
	in[7].u.fenced.epoch = 3;
	in[7].u.fenced.reason = AGENT_E_LEASE_EXPIRED;
	in[8].type = AGENT_MSG_REJOIN;
	in[8].u.rejoin = (struct agent_rejoin){7, 3, 4};
	in[9].type = AGENT_MSG_REJOIN_ACK;
	in[9].u.rejoin_ack = (struct agent_rejoin_ack){7, 4};

	for (int i = 0; i < 10; i++) {
		in[i].version = 1;
		in[i].request_id = 1000 + i;
		len = enc(&in[i]);
		assert_int_equal(dec(len, &out, &err), 0);
		assert_int_equal(err, AGENT_E_NONE);
		assert_int_equal(out.type, in[i].type);
		assert_int_equal(out.request_id, 1000 + i);
		switch (out.type) {
		case AGENT_MSG_JOIN_REQUEST:
			assert_string_equal(out.u.join_req.token_id, "tok-4f2a");
			assert_int_equal(out.u.join_req.secret_len, 32);
			assert_memory_equal(out.u.join_req.secret, in[i].u.join_req.secret, 32);
			assert_string_equal(out.u.join_req.host_name, "kvm1.example.org");
			assert_int_equal(out.u.join_req.n_iqn, 2);
			assert_string_equal(out.u.join_req.iqn[1], "iqn.2026-01.org.example:kvm1b");
			assert_int_equal(out.u.join_req.csr_pem.len, 900);
			assert_memory_equal(out.u.join_req.csr_pem.p, pem_a, 900);
			/* Borrowed from the frame, not from the caller's buffer. */
			assert_true(out.u.join_req.csr_pem.p > frame &&
				    out.u.join_req.csr_pem.p < frame + len);
			break;
		case AGENT_MSG_JOIN_RESPONSE:
			assert_int_equal(out.u.join_resp.host_id, 3);
			assert_int_equal(out.u.join_resp.cert_pem.len, 2000);
			assert_int_equal(out.u.join_resp.ca_pem.len, 1500);
			assert_memory_equal(out.u.join_resp.ca_pem.p, pem_b, 1500);
			break;
		default:
			/* The other messages hold no pointers: compare the whole union. */
			assert_memory_equal(&out.u, &in[i].u, sizeof(out.u));
			break;
		}
	}
}

static void test_frame_len_needs_a_header_and_refuses_bad_magic_or_size(void **state)
{
	size_t n = 0;

	raw_rejoin_ack();
	assert_int_equal(agent_proto_frame_len(frame, 15, &n), -EAGAIN);
	assert_int_equal(agent_proto_frame_len(frame, 16, &n), 0);
	assert_int_equal(n, 16 + 8 + 12);
	put_be32(frame + 12, AGENT_PROTO_MAX_PAYLOAD);
	assert_int_equal(agent_proto_frame_len(frame, 16, &n), 0);
	put_be32(frame + 12, AGENT_PROTO_MAX_PAYLOAD + 1);
	assert_int_equal(agent_proto_frame_len(frame, 16, &n), -EMSGSIZE);
	frame[0] = 'X';
	assert_int_equal(agent_proto_frame_len(frame, 16, &n), -EBADMSG);
}

static void test_every_truncation_is_refused_as_malformed(void **state)
{
	struct agent_msg m;
	enum agent_err err;
	size_t len;

	join_msg(&m);
	len = enc(&m);
	assert_int_equal(dec(len, &m, &err), 0);
	for (size_t cut = 0; cut < len; cut++) {
		assert_int_equal(dec(cut, &m, &err), -EBADMSG);
		assert_int_equal(err, AGENT_E_MALFORMED);
	}
	/* A truncated payload with a header that still claims the full length. */
	put_be32(frame + 12, len - 16 - 1);
	assert_int_equal(dec(len - 1, &m, &err), -EBADMSG);
	assert_int_equal(err, AGENT_E_MALFORMED);
}

static void test_payload_over_64k_is_too_big(void **state)
{
	struct agent_msg m;
	enum agent_err err;

	raw_hdr(1, AGENT_MSG_HEARTBEAT, 9);
	put_be32(frame + 12, AGENT_PROTO_MAX_PAYLOAD + 1);
	memset(frame + 16, 0, AGENT_PROTO_MAX_PAYLOAD + 1);
	assert_int_equal(dec(16 + AGENT_PROTO_MAX_PAYLOAD + 1, &m, &err), -EMSGSIZE);
	assert_int_equal(err, AGENT_E_TOO_BIG);
}

static void test_unknown_and_reserved_types_get_an_error_naming_the_request(void **state)
{
	static const uint8_t types[] = {0x00, 0x04, 0x25, 0x4b, 0x5f, 0x60, 0x7f, 0xf0, 0xff};
	struct agent_msg m;
	enum agent_err err;

	for (size_t i = 0; i < sizeof(types); i++) {
		size_t len = raw_hdr(1, types[i], 0xabcdef01);

		assert_int_equal(dec(len, &m, &err), -EOPNOTSUPP);
		assert_int_equal(err, AGENT_E_UNKNOWN_TYPE);
		assert_int_equal(m.request_id, 0xabcdef01);
		assert_int_equal(m.type, types[i]);
	}
}

static void test_only_hello_and_error_are_read_in_an_unknown_version(void **state)
{
	struct agent_msg m;
	enum agent_err err;
	size_t len;

	len = raw_rejoin_ack();
	frame[4] = 2;
	assert_int_equal(dec(len, &m, &err), -EPROTONOSUPPORT);
	assert_int_equal(err, AGENT_E_VERSION);
	frame[4] = 0;
	assert_int_equal(dec(len, &m, &err), -EPROTONOSUPPORT);

	/* A version-9 peer's HELLO still decodes, so the box can answer with its range. */
	memset(&m, 0, sizeof(m));
	m.version = 9;
	m.type = AGENT_MSG_HELLO;
	m.u.hello = (struct agent_hello){1, 9, ~0ull, AGENT_ROLE_AGENT, ""};
	len = enc(&m);
	assert_int_equal(dec(len, &m, &err), 0);
	assert_int_equal(m.version, 9);
	assert_int_equal(m.u.hello.version_max, 9);
	/* But the encoder will not write a heartbeat in a version it does not speak. */
	hb_msg(&m);
	m.version = 2;
	assert_int_equal(agent_proto_encode(&m, frame, sizeof(frame), &len), -EINVAL);
}

static void test_unknown_fields_are_skipped_unless_critical(void **state)
{
	struct agent_msg m;
	enum agent_err err;
	size_t len;

	len = raw_rejoin_ack();
	len = raw_tlv(len, 0x0777, "future", 6);
	/* A known tag of another message is unknown here. */
	len = raw_tlv(len, 0x0011, "x", 1);
	assert_int_equal(dec(len, &m, &err), 0);
	assert_int_equal(m.u.rejoin_ack.host_id, 7);
	assert_int_equal(m.u.rejoin_ack.epoch, 2);
	len = raw_tlv(len, 0x8777, "must", 4);
	assert_int_equal(dec(len, &m, &err), -EBADMSG);
	assert_int_equal(err, AGENT_E_UNKNOWN_CRITICAL);
}

static void test_duplicate_field_is_malformed(void **state)
{
	struct agent_msg m;
	enum agent_err err;
	size_t len;

	len = raw_rejoin_ack();
	len = raw_u64(len, 0x0021, 3);
	assert_int_equal(dec(len, &m, &err), -EBADMSG);
	assert_int_equal(err, AGENT_E_MALFORMED);
}

static void test_missing_required_field_is_named(void **state)
{
	struct agent_msg m;
	enum agent_err err;
	size_t len = raw_hdr(1, AGENT_MSG_REJOIN_ACK, 5);

	len = raw_u32(len, 0x0020, 7);
	assert_int_equal(dec(len, &m, &err), -EBADMSG);
	assert_int_equal(err, AGENT_E_MISSING_FIELD);
}

static void test_integer_of_wrong_width_or_range_is_a_bad_field(void **state)
{
	struct agent_msg m;
	enum agent_err err;
	size_t len;

	len = raw_hdr(1, AGENT_MSG_REJOIN_ACK, 5);
	len = raw_u64(len, 0x0020, 7); /* host id is 4 bytes */
	len = raw_u64(len, 0x0021, 2);
	assert_int_equal(dec(len, &m, &err), -EBADMSG);
	assert_int_equal(err, AGENT_E_BAD_FIELD);

	len = raw_hdr(1, AGENT_MSG_REJOIN_ACK, 5);
	len = raw_u32(len, 0x0020, 0); /* host ids start at 1 */
	len = raw_u64(len, 0x0021, 2);
	assert_int_equal(dec(len, &m, &err), -EBADMSG);
	assert_int_equal(err, AGENT_E_BAD_FIELD);

	/* The encoder refuses the same value. */
	memset(&m, 0, sizeof(m));
	m.version = 1;
	m.type = AGENT_MSG_HEARTBEAT_ACK;
	m.u.hb_ack = (struct agent_heartbeat_ack){7, 3, 99, 0, 0, 2, 0};
	assert_int_equal(agent_proto_encode(&m, frame, sizeof(frame), &len), -EINVAL);
}

static void test_names_refuse_spaces_nul_and_bad_iqns(void **state)
{
	static const char *bad_host[] = {"kvm 1", "kvm\0001", "kvm\n1", ""};
	static const char *bad_iqn[] = {"iqn", "foo.2026-01.x:y", "iqn.2026 x", "IQN.2026-01.x"};
	struct agent_msg m;
	enum agent_err err;
	size_t len;

	join_msg(&m);
	for (size_t i = 0; i < 4; i++) {
		/* Swap the host name for the bad one by rebuilding the frame by hand. */
		len = raw_hdr(1, AGENT_MSG_JOIN_REQUEST, 1);
		len = raw_tlv(len, 0x0010, "tok", 3);
		len = raw_tlv(len, 0x0011, "0123456789abcdef", 16);
		len = raw_tlv(len, 0x0012, bad_host[i], i == 1 ? 5 : strlen(bad_host[i]));
		len = raw_tlv(len, 0x0013, "iqn.2026-01.x:y", 15);
		len = raw_tlv(len, 0x0014, pem_a, 100);
		assert_int_equal(dec(len, &m, &err), -EBADMSG);
		assert_int_equal(err, AGENT_E_BAD_FIELD);
	}
	for (size_t i = 0; i < 4; i++) {
		join_msg(&m);
		strcpy(m.u.join_req.iqn[1], bad_iqn[i]);
		assert_int_equal(agent_proto_encode(&m, frame, sizeof(frame), &len), -EINVAL);
	}
	/* The good hand-built frame decodes, so the loop above failed for the name alone. */
	len = raw_hdr(1, AGENT_MSG_JOIN_REQUEST, 1);
	len = raw_tlv(len, 0x0010, "tok", 3);
	len = raw_tlv(len, 0x0011, "0123456789abcdef", 16);
	len = raw_tlv(len, 0x0012, "kvm1", 4);
	len = raw_tlv(len, 0x0013, "iqn.2026-01.x:y", 15);
	len = raw_tlv(len, 0x0014, pem_a, 100);
	assert_int_equal(dec(len, &m, &err), 0);
}

static void test_iqn_count_is_limited_to_eight(void **state)
{
	struct agent_msg m;
	enum agent_err err;
	size_t len;

	join_msg(&m);
	for (unsigned i = 0; i < AGENT_MAX_IQNS; i++)
		snprintf(m.u.join_req.iqn[i], sizeof(m.u.join_req.iqn[i]), "iqn.2026-01.x:h%u", i);
	m.u.join_req.n_iqn = AGENT_MAX_IQNS;
	len = enc(&m);
	assert_int_equal(dec(len, &m, &err), 0);
	assert_int_equal(m.u.join_req.n_iqn, AGENT_MAX_IQNS);
	assert_string_equal(m.u.join_req.iqn[7], "iqn.2026-01.x:h7");
	len = raw_tlv(len, 0x0013, "iqn.2026-01.x:h8", 16);
	assert_int_equal(dec(len, &m, &err), -EBADMSG);
	assert_int_equal(err, AGENT_E_BAD_FIELD);
	/* Zero IQNs is a missing field. */
	join_msg(&m);
	m.u.join_req.n_iqn = 0;
	assert_int_equal(agent_proto_encode(&m, frame, sizeof(frame), &len), -EINVAL);
}

static void test_pem_is_limited_to_8k_and_must_look_like_pem(void **state)
{
	struct agent_msg m;
	enum agent_err err;
	size_t len;

	join_msg(&m);
	make_pem(pem_a, AGENT_PEM_MAX, 'C');
	m.u.join_req.csr_pem.len = AGENT_PEM_MAX;
	len = enc(&m);
	assert_int_equal(dec(len, &m, &err), 0);
	assert_int_equal(m.u.join_req.csr_pem.len, AGENT_PEM_MAX);

	join_msg(&m);
	make_pem(pem_a, AGENT_PEM_MAX + 1, 'C');
	m.u.join_req.csr_pem.len = AGENT_PEM_MAX + 1;
	assert_int_equal(agent_proto_encode(&m, frame, sizeof(frame), &len), -EINVAL);

	len = raw_hdr(1, AGENT_MSG_JOIN_RESPONSE, 1);
	len = raw_u32(len, 0x0020, 1);
	len = raw_u64(len, 0x0021, 1);
	len = raw_tlv(len, 0x0015, pem_a, AGENT_PEM_MAX + 1);
	len = raw_tlv(len, 0x0016, pem_a, 100);
	assert_int_equal(dec(len, &m, &err), -EBADMSG);
	assert_int_equal(err, AGENT_E_BAD_FIELD);

	/* Not PEM: DER bytes, or a NUL inside. */
	len = raw_hdr(1, AGENT_MSG_JOIN_RESPONSE, 1);
	len = raw_u32(len, 0x0020, 1);
	len = raw_u64(len, 0x0021, 1);
	len = raw_tlv(len, 0x0015, "\x30\x82\x01\x0a", 4);
	len = raw_tlv(len, 0x0016, pem_a, 100);
	assert_int_equal(dec(len, &m, &err), -EBADMSG);
	pem_a[50] = '\0';
	len = raw_hdr(1, AGENT_MSG_JOIN_RESPONSE, 1);
	len = raw_u32(len, 0x0020, 1);
	len = raw_u64(len, 0x0021, 1);
	len = raw_tlv(len, 0x0015, pem_a, 100);
	len = raw_tlv(len, 0x0016, pem_a, 40);
	assert_int_equal(dec(len, &m, &err), -EBADMSG);
	assert_int_equal(err, AGENT_E_BAD_FIELD);
}

static void test_secret_length_is_bounded(void **state)
{
	struct agent_msg m;
	size_t len;

	join_msg(&m);
	m.u.join_req.secret_len = AGENT_SECRET_MIN - 1;
	assert_int_equal(agent_proto_encode(&m, frame, sizeof(frame), &len), -EINVAL);
	m.u.join_req.secret_len = AGENT_SECRET_MAX + 1;
	assert_int_equal(agent_proto_encode(&m, frame, sizeof(frame), &len), -EINVAL);
	m.u.join_req.secret_len = AGENT_SECRET_MAX;
	assert_int_equal(agent_proto_encode(&m, frame, sizeof(frame), &len), 0);
}

static void test_encoder_never_writes_past_its_buffer(void **state)
{
	static uint8_t small[4096];
	struct agent_msg m;
	size_t need, len;

	join_msg(&m);
	need = enc(&m);
	for (size_t cap = 0; cap < need; cap++) {
		memset(small, 0xee, sizeof(small));
		assert_int_equal(agent_proto_encode(&m, small, cap, &len), -EMSGSIZE);
		for (size_t i = cap; i < sizeof(small); i++)
			assert_int_equal(small[i], 0xee);
	}
	assert_int_equal(agent_proto_encode(&m, small, need, &len), 0);
	assert_int_equal(len, need);
}

static void test_hello_ack_version_must_lie_in_its_range(void **state)
{
	struct agent_msg m;
	size_t len;

	memset(&m, 0, sizeof(m));
	m.version = 1;
	m.type = AGENT_MSG_HELLO_ACK;
	m.u.hello_ack = (struct agent_hello_ack){2, 3, 0, 1, 0, "", {0}};
	assert_int_equal(agent_proto_encode(&m, frame, sizeof(frame), &len), -EINVAL);
	m.u.hello_ack.version = 3;
	assert_int_equal(agent_proto_encode(&m, frame, sizeof(frame), &len), 0);
}

static void test_negotiation_picks_the_highest_common_version_and_ands_caps(void **state)
{
	uint8_t v = 0;
	uint64_t caps = 0;

	assert_int_equal(agent_proto_negotiate(1, 3, 0xb, 2, 5, 0x6, &v, &caps), 0);
	assert_int_equal(v, 3);
	assert_int_equal(caps, 0x2);
	assert_int_equal(agent_proto_negotiate(2, 5, 0x1, 1, 3, 0x1, &v, &caps), 0);
	assert_int_equal(v, 3);
	assert_int_equal(agent_proto_negotiate(1, 1, 1, 2, 4, 1, &v, &caps), -EPROTONOSUPPORT);
	assert_int_equal(agent_proto_negotiate(3, 2, 1, 1, 4, 1, &v, &caps), -EPROTONOSUPPORT);
	assert_int_equal(agent_proto_negotiate(0, 1, 1, 1, 1, 1, &v, &caps), -EPROTONOSUPPORT);
}

/* ---- catalog messages (agent-protocol.md, "Catalog") ---- */

#define VID "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"

static void info_msg(struct agent_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->version = 1;
	m->type = AGENT_MSG_VDISK_INFO;
	m->request_id = 77;
	snprintf(m->u.vd_info.id, sizeof(m->u.vd_info.id), "%s", VID);
	snprintf(m->u.vd_info.name, sizeof(m->u.vd_info.name), "disk1");
	snprintf(m->u.vd_info.pool, sizeof(m->u.vd_info.pool), "pool1");
	m->u.vd_info.size = 64ull << 20;
	snprintf(m->u.vd_info.target_iqn, sizeof(m->u.vd_info.target_iqn),
		 "iqn.2026-11.org.holdfast:cluster");
	m->u.vd_info.lun = 3;
	m->u.vd_info.epoch = 2;
	m->u.vd_info.state = 2;
	m->u.vd_info.attached = 1;
	snprintf(m->u.vd_info.owner, sizeof(m->u.vd_info.owner), "kvm1");
}

static void test_catalog_messages_round_trip(void **state)
{
	struct agent_msg in[13], out;
	enum agent_err err;
	size_t len;
	int n = 0;

	memset(in, 0, sizeof(in));
	in[n++].type = AGENT_MSG_VDISK_LIST; /* no filter: an empty payload */
	in[n].type = AGENT_MSG_VDISK_LIST;
	snprintf(in[n++].u.vd_list.pool, sizeof(in[0].u.vd_list.pool), "pool1");
	info_msg(&in[n++]);
	info_msg(&in[n]);
	memset(in[n].u.vd_info.owner, 0, sizeof(in[n].u.vd_info.owner)); /* nobody owns it */
	snprintf(in[n++].u.vd_info.vm, sizeof(in[0].u.vd_info.vm), "web server 1");
	in[n].type = AGENT_MSG_VDISK_LIST_END;
	in[n++].u.vd_end.count = 0;
	in[n].type = AGENT_MSG_VDISK_CREATE;
	in[n].u.vd_create = (struct agent_vdisk_create){"pool1", "disk1", 1ull << 30, ""};
	n++;
	for (uint8_t t = AGENT_MSG_VDISK_EXTEND; t <= AGENT_MSG_VDISK_CLONE; t++) {
		in[n].type = t;
		snprintf(in[n].u.vd_op.id, sizeof(in[n].u.vd_op.id), "%s", VID);
		if (t != AGENT_MSG_VDISK_DELETED)
			in[n].u.vd_op.epoch = 5;
		if (t == AGENT_MSG_VDISK_EXTEND)
			in[n].u.vd_op.size = 2ull << 30;
		if (t == AGENT_MSG_VDISK_TRANSFER)
			snprintf(in[n].u.vd_op.to_host, sizeof(in[n].u.vd_op.to_host), "kvm2");
		if (t == AGENT_MSG_VDISK_CLONE)
			snprintf(in[n].u.vd_op.name, sizeof(in[n].u.vd_op.name), "copy1");
		n++;
	}
	assert_int_equal(n, 13);
	for (int i = 0; i < n; i++) {
		if (!in[i].version)
			in[i].version = 1;
		in[i].request_id = 500 + i;
		len = enc(&in[i]);
		assert_int_equal(dec(len, &out, &err), 0);
		assert_int_equal(err, AGENT_E_NONE);
		assert_int_equal(out.type, in[i].type);
		assert_true(agent_proto_is_catalog(out.type));
		assert_memory_equal(&out.u, &in[i].u, sizeof(out.u));
	}
	/* The pool messages too. */
	memset(&in[0], 0, sizeof(in[0]));
	in[0].version = 1;
	in[0].type = AGENT_MSG_POOL_ADD;
	snprintf(in[0].u.pool.name, sizeof(in[0].u.pool.name), "fast");
	snprintf(in[0].u.pool.path, sizeof(in[0].u.pool.path), "/srv/pools/fast one");
	len = enc(&in[0]);
	assert_int_equal(dec(len, &out, &err), 0);
	assert_string_equal(out.u.pool.path, "/srv/pools/fast one");
	in[0].type = AGENT_MSG_POOL_REMOVE;
	in[0].u.pool.path[0] = '\0';
	len = enc(&in[0]);
	assert_int_equal(dec(len, &out, &err), 0);
	assert_string_equal(out.u.pool.name, "fast");
}

static void test_vdisk_info_fields_are_where_the_document_says(void **state)
{
	struct agent_msg m;
	size_t len;

	info_msg(&m);
	len = enc(&m);
	assert_int_equal(frame[5], 0x41);
	/* vdisk_id first: tag 0x0040, 36 bytes. */
	assert_memory_equal(frame + 16, "\x00\x40\x00\x24", 4);
	assert_memory_equal(frame + 20, VID, 36);
	/* vdisk_name 0x0041, pool_name 0x0042, size 0x0043 (u64). */
	assert_memory_equal(frame + 56,
			    "\x00\x41\x00\x05"
			    "disk1",
			    9);
	assert_memory_equal(frame + 65,
			    "\x00\x42\x00\x05"
			    "pool1",
			    9);
	assert_memory_equal(frame + 74, "\x00\x43\x00\x08\x00\x00\x00\x00\x04\x00\x00\x00", 12);
	/* The last field is owner (0x0047): no vm when it is empty. */
	assert_memory_equal(frame + len - 8, "\x00\x47\x00\x04kvm1", 8);
}

/* A raw VDISK_ATTACH (vdisk_id, vdisk_epoch) to mutate. */
static size_t raw_attach(void)
{
	size_t pos = raw_hdr(1, AGENT_MSG_VDISK_ATTACH, 9);

	pos = raw_tlv(pos, 0x0040, VID, 36);
	return raw_u64(pos, 0x0044, 3);
}

static void test_catalog_negative_cases(void **state)
{
	struct agent_msg m;
	enum agent_err err;
	size_t len, full;
	uint8_t four[4] = {0, 0, 0, 3};

	full = raw_attach();
	assert_int_equal(dec(full, &m, &err), 0);
	assert_string_equal(m.u.vd_op.id, VID);
	assert_int_equal(m.u.vd_op.epoch, 3);

	/* Every truncation is malformed. */
	for (size_t cut = 0; cut < full; cut++) {
		assert_int_equal(dec(cut, &m, &err), -EBADMSG);
		assert_int_equal(err, AGENT_E_MALFORMED);
	}
	/* The epoch is a u64: 4 bytes are a bad field; 0 is out of range. */
	len = raw_hdr(1, AGENT_MSG_VDISK_ATTACH, 9);
	len = raw_tlv(len, 0x0040, VID, 36);
	len = raw_tlv(len, 0x0044, four, 4);
	assert_int_equal(dec(len, &m, &err), -EBADMSG);
	assert_int_equal(err, AGENT_E_BAD_FIELD);
	len = raw_hdr(1, AGENT_MSG_VDISK_ATTACH, 9);
	len = raw_tlv(len, 0x0040, VID, 36);
	len = raw_u64(len, 0x0044, 0);
	assert_int_equal(dec(len, &m, &err), -EBADMSG);
	assert_int_equal(err, AGENT_E_BAD_FIELD);
	/* A disk id longer than 36, or with a space, is a bad field. */
	len = raw_hdr(1, AGENT_MSG_VDISK_ATTACH, 9);
	len = raw_tlv(len, 0x0040, VID "0", 37);
	len = raw_u64(len, 0x0044, 3);
	assert_int_equal(dec(len, &m, &err), -EBADMSG);
	assert_int_equal(err, AGENT_E_BAD_FIELD);
	len = raw_hdr(1, AGENT_MSG_VDISK_ATTACH, 9);
	len = raw_tlv(len, 0x0040, "disk one", 8);
	len = raw_u64(len, 0x0044, 3);
	assert_int_equal(dec(len, &m, &err), -EBADMSG);
	assert_int_equal(err, AGENT_E_BAD_FIELD);
	/* Without the epoch the request is incomplete. */
	len = raw_hdr(1, AGENT_MSG_VDISK_ATTACH, 9);
	len = raw_tlv(len, 0x0040, VID, 36);
	assert_int_equal(dec(len, &m, &err), -EBADMSG);
	assert_int_equal(err, AGENT_E_MISSING_FIELD);
	/* An unknown critical field is refused; the same field not critical is skipped. */
	full = raw_attach();
	len = raw_tlv(full, 0x8000 | 0x0a00, "x", 1);
	assert_int_equal(dec(len, &m, &err), -EBADMSG);
	assert_int_equal(err, AGENT_E_UNKNOWN_CRITICAL);
	full = raw_attach();
	len = raw_tlv(full, 0x0a00, "x", 1);
	assert_int_equal(dec(len, &m, &err), 0);
	/* A field known elsewhere (host_id) is unknown here: critical, it is refused. */
	full = raw_attach();
	len = raw_u32(full, 0x8000 | 0x0020, 7);
	assert_int_equal(dec(len, &m, &err), -EBADMSG);
	assert_int_equal(err, AGENT_E_UNKNOWN_CRITICAL);
	/* The same field twice is malformed. */
	full = raw_attach();
	len = raw_u64(full, 0x0044, 3);
	assert_int_equal(dec(len, &m, &err), -EBADMSG);
	assert_int_equal(err, AGENT_E_MALFORMED);
	/* A LUN above 16383 and a state of 0 are bad fields; the encoder refuses them too. */
	info_msg(&m);
	m.u.vd_info.lun = AGENT_LUN_MAX + 1;
	assert_int_equal(agent_proto_encode(&m, frame, sizeof(frame), &len), -EINVAL);
	info_msg(&m);
	m.u.vd_info.state = 0;
	assert_int_equal(agent_proto_encode(&m, frame, sizeof(frame), &len), -EINVAL);
	info_msg(&m);
	snprintf(m.u.vd_info.target_iqn, sizeof(m.u.vd_info.target_iqn), "cluster");
	assert_int_equal(agent_proto_encode(&m, frame, sizeof(frame), &len), -EINVAL);
	/* A create of size 0 is refused both ways. */
	memset(&m, 0, sizeof(m));
	m.version = 1;
	m.type = AGENT_MSG_VDISK_CREATE;
	m.u.vd_create = (struct agent_vdisk_create){"pool1", "disk1", 0, ""};
	assert_int_equal(agent_proto_encode(&m, frame, sizeof(frame), &len), -EINVAL);
	/* A catalog message in a version this build does not speak. */
	full = raw_attach();
	frame[4] = 2;
	assert_int_equal(dec(full, &m, &err), -EPROTONOSUPPORT);
	assert_int_equal(err, AGENT_E_VERSION);
	/* Codes have texts. */
	assert_string_equal(agent_proto_strerror(AGENT_E_FORBIDDEN), "forbidden for this host");
	assert_string_equal(agent_proto_type_name(AGENT_MSG_VDISK_TRANSFER), "VDISK_TRANSFER");
}

/* Lease timing in HELLO_ACK (agent-protocol.md, "Lease timing"): tags 0x2b-0x2e, not critical,
 * so an older agent skips them; absent, they decode as zero (an older box). */
static void test_hello_ack_carries_the_box_lease_timing(void **state)
{
	struct agent_msg m, out;
	enum agent_err err;
	size_t len, pos;

	memset(&m, 0, sizeof(m));
	m.version = 1;
	m.type = AGENT_MSG_HELLO_ACK;
	m.u.hello_ack = (struct agent_hello_ack){1,
						 1,
						 AGENT_CAP_LEASE,
						 1,
						 AGENT_CAP_LEASE,
						 "",
						 {250000000ull, 7, 1775000000ull, 10000}};
	len = enc(&m);
	assert_int_equal(dec(len, &out, &err), 0);
	assert_int_equal(out.u.hello_ack.timing.heartbeat_ns, 250000000ull);
	assert_int_equal(out.u.hello_ack.timing.miss, 7);
	assert_int_equal(out.u.hello_ack.timing.lease_timeout_ns, 1775000000ull);
	assert_int_equal(out.u.hello_ack.timing.skew_ppm, 10000);
	/* The four fields close the payload, in table order, without the critical bit:
	 * 12 + 6 + 12 + 8 bytes. */
	pos = len - 38;
	assert_int_equal(get_be16(frame + pos), 0x002b);
	assert_int_equal(get_be16(frame + pos + 2), 8);
	assert_int_equal(get_be64(frame + pos + 4), 250000000ull);
	assert_int_equal(get_be16(frame + pos + 12), 0x002c);
	assert_int_equal(get_be16(frame + pos + 14), 2);
	assert_int_equal(get_be16(frame + pos + 16), 7);
	assert_int_equal(get_be16(frame + pos + 18), 0x002d);
	assert_int_equal(get_be64(frame + pos + 22), 1775000000ull);
	assert_int_equal(get_be16(frame + pos + 30), 0x002e);
	assert_int_equal(get_be16(frame + pos + 32), 4);
	assert_int_equal(get_be32(frame + pos + 34), 10000);

	/* An older box sends none: zero, and the frame is 38 bytes shorter. */
	m.u.hello_ack.timing = (struct agent_lease_timing){0};
	assert_int_equal(enc(&m), len - 38);
	assert_int_equal(dec(len - 38, &out, &err), 0);
	assert_int_equal(out.u.hello_ack.timing.heartbeat_ns, 0);
	assert_int_equal(out.u.hello_ack.timing.miss, 0);

	/* A rate bound of 100% or more is not a bound: refused by both sides. */
	m.u.hello_ack.timing =
		(struct agent_lease_timing){1000000000ull, 5, 5100000000ull, 1000000};
	assert_int_equal(agent_proto_encode(&m, frame, sizeof(frame), &len), -EINVAL);
	pos = raw_hdr(1, AGENT_MSG_HELLO_ACK, 1);
	pos = raw_tlv(pos, 0x0001, "\x01", 1);
	pos = raw_tlv(pos, 0x0002, "\x01", 1);
	pos = raw_u64(pos, 0x0003, 1);
	pos = raw_tlv(pos, 0x0004, "\x01", 1);
	pos = raw_u64(pos, 0x0005, 1);
	pos = raw_u32(pos, 0x002e, 1000000);
	assert_int_equal(dec(pos, &out, &err), -EBADMSG);
	assert_int_equal(err, AGENT_E_BAD_FIELD);
}

static void test_join_response_carries_timing_and_agent_port(void **state)
{
	struct agent_msg m, out;
	enum agent_err err;
	size_t len;

	memset(&m, 0, sizeof(m));
	make_pem(pem_b, 600, 'C');
	m.version = 1;
	m.type = AGENT_MSG_JOIN_RESPONSE;
	m.u.join_resp.host_id = 2;
	m.u.join_resp.epoch = 1;
	m.u.join_resp.cert_pem = (struct agent_blob){(const uint8_t *)pem_b, 600};
	m.u.join_resp.ca_pem = (struct agent_blob){(const uint8_t *)pem_b, 500};
	m.u.join_resp.timing = (struct agent_lease_timing){500000000ull, 3, 1550000000ull, 10000};
	m.u.join_resp.agent_port = 3261;
	len = enc(&m);
	assert_int_equal(dec(len, &out, &err), 0);
	assert_int_equal(out.u.join_resp.agent_port, 3261);
	assert_int_equal(out.u.join_resp.timing.miss, 3);
	assert_int_equal(out.u.join_resp.timing.lease_timeout_ns, 1550000000ull);
	/* The port is the last field: tag 0x2f, two bytes. */
	assert_int_equal(get_be16(frame + len - 6), 0x002f);
	assert_int_equal(get_be16(frame + len - 2), 3261);
}

/* Paging (agent-protocol.md, "Paging"): start_after and limit in VDISK_LIST, more (critical)
 * and start_after in VDISK_LIST_END. */
static void test_list_paging_fields(void **state)
{
	struct agent_msg m, out;
	enum agent_err err;
	size_t len, pos;

	memset(&m, 0, sizeof(m));
	m.version = 1;
	m.type = AGENT_MSG_VDISK_LIST;
	snprintf(m.u.vd_list.start_after, sizeof(m.u.vd_list.start_after), "%s",
		 "0f6e2a59-7a43-4b4e-9d0e-4c3c2b1a0000");
	m.u.vd_list.limit = 250;
	len = enc(&m);
	assert_int_equal(dec(len, &out, &err), 0);
	assert_string_equal(out.u.vd_list.start_after, m.u.vd_list.start_after);
	assert_int_equal(out.u.vd_list.limit, 250);
	assert_string_equal(out.u.vd_list.pool, "");
	/* Neither is required: an older agent's request is a whole list's first page. */
	memset(&m.u.vd_list, 0, sizeof(m.u.vd_list));
	len = enc(&m);
	assert_int_equal(len, AGENT_PROTO_HDR_LEN);
	assert_int_equal(dec(len, &out, &err), 0);
	assert_int_equal(out.u.vd_list.limit, 0);

	memset(&m, 0, sizeof(m));
	m.version = 1;
	m.type = AGENT_MSG_VDISK_LIST_END;
	m.u.vd_end.count = 1000;
	m.u.vd_end.more = 1;
	snprintf(m.u.vd_end.start_after, sizeof(m.u.vd_end.start_after), "%s", "disk-0999");
	len = enc(&m);
	/* count (8 bytes), then more with the critical bit, then start_after. */
	pos = AGENT_PROTO_HDR_LEN + 8;
	assert_int_equal(get_be16(frame + pos), 0x8050);
	assert_int_equal(frame[pos + 4], 1);
	assert_int_equal(get_be16(frame + pos + 5), 0x004e);
	assert_int_equal(dec(len, &out, &err), 0);
	assert_int_equal(out.u.vd_end.more, 1);
	assert_string_equal(out.u.vd_end.start_after, "disk-0999");
	/* The last page: no more, no start_after, and the frame is what an older box sends. */
	m.u.vd_end.more = 0;
	m.u.vd_end.start_after[0] = '\0';
	assert_int_equal(enc(&m), AGENT_PROTO_HDR_LEN + 8);
	/* more without a place to start is refused on both sides. */
	m.u.vd_end.more = 1;
	assert_int_equal(agent_proto_encode(&m, frame, sizeof(frame), &len), -EINVAL);
	pos = raw_hdr(1, AGENT_MSG_VDISK_LIST_END, 4);
	pos = raw_u32(pos, 0x004c, 3);
	pos = raw_tlv(pos, 0x8050, "\x01", 1);
	assert_int_equal(dec(pos, &out, &err), -EBADMSG);
	assert_int_equal(err, AGENT_E_MISSING_FIELD);
	/* more is 0 or 1; 0 on the wire is out of range (absent means 0). */
	pos = raw_hdr(1, AGENT_MSG_VDISK_LIST_END, 4);
	pos = raw_u32(pos, 0x004c, 3);
	pos = raw_tlv(pos, 0x8050, "\x02", 1);
	assert_int_equal(dec(pos, &out, &err), -EBADMSG);
	assert_int_equal(err, AGENT_E_BAD_FIELD);
	/* A limit of 0 is not a limit. */
	pos = raw_hdr(1, AGENT_MSG_VDISK_LIST, 4);
	pos = raw_u32(pos, 0x004f, 0);
	assert_int_equal(dec(pos, &out, &err), -EBADMSG);
	assert_int_equal(err, AGENT_E_BAD_FIELD);
}

static void test_error_text_is_cut_and_made_printable(void **state)
{
	struct agent_msg m;
	enum agent_err err;
	char text[AGENT_TEXT_MAX + 50];
	size_t len;

	memset(text, 'x', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	text[3] = '\n';
	agent_proto_make_error(&m, 42, AGENT_E_STALE_EPOCH, AGENT_MSG_HEARTBEAT, text);
	len = enc(&m);
	assert_int_equal(dec(len, &m, &err), 0);
	assert_int_equal(m.request_id, 42);
	assert_int_equal(m.u.error.code, AGENT_E_STALE_EPOCH);
	assert_int_equal(strlen(m.u.error.text), AGENT_TEXT_MAX);
	assert_int_equal(m.u.error.text[3], '?');
	assert_string_equal(agent_proto_strerror(AGENT_E_STALE_EPOCH), "stale epoch");
	assert_string_equal(agent_proto_strerror(999), "unknown error");
	assert_string_equal(agent_proto_type_name(0x4b), "catalog (unknown)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_heartbeat_header_and_fields_are_where_the_document_says),
		cmocka_unit_test(test_every_message_type_round_trips),
		cmocka_unit_test(test_frame_len_needs_a_header_and_refuses_bad_magic_or_size),
		cmocka_unit_test(test_every_truncation_is_refused_as_malformed),
		cmocka_unit_test(test_payload_over_64k_is_too_big),
		cmocka_unit_test(test_unknown_and_reserved_types_get_an_error_naming_the_request),
		cmocka_unit_test(test_only_hello_and_error_are_read_in_an_unknown_version),
		cmocka_unit_test(test_unknown_fields_are_skipped_unless_critical),
		cmocka_unit_test(test_duplicate_field_is_malformed),
		cmocka_unit_test(test_missing_required_field_is_named),
		cmocka_unit_test(test_integer_of_wrong_width_or_range_is_a_bad_field),
		cmocka_unit_test(test_names_refuse_spaces_nul_and_bad_iqns),
		cmocka_unit_test(test_iqn_count_is_limited_to_eight),
		cmocka_unit_test(test_pem_is_limited_to_8k_and_must_look_like_pem),
		cmocka_unit_test(test_secret_length_is_bounded),
		cmocka_unit_test(test_encoder_never_writes_past_its_buffer),
		cmocka_unit_test(test_hello_ack_version_must_lie_in_its_range),
		cmocka_unit_test(test_negotiation_picks_the_highest_common_version_and_ands_caps),
		cmocka_unit_test(test_error_text_is_cut_and_made_printable),
		cmocka_unit_test(test_catalog_messages_round_trip),
		cmocka_unit_test(test_vdisk_info_fields_are_where_the_document_says),
		cmocka_unit_test(test_catalog_negative_cases),
		cmocka_unit_test(test_hello_ack_carries_the_box_lease_timing),
		cmocka_unit_test(test_join_response_carries_timing_and_agent_port),
		cmocka_unit_test(test_list_paging_fields),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
