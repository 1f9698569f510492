/* libFuzzer target: the input is a stream of agent protocol frames. Each frame found by
 * agent_proto_frame_len goes through agent_proto_decode; a frame that decodes must encode again
 * (the encoder accepts all the decoder accepts), and encoding is then a fixed point: decode and
 * encode once more give the same bytes. A failure must always name an error code. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csv-coord/agent_proto.h"

static uint8_t out1[AGENT_PROTO_MAX_FRAME];
static uint8_t out2[AGENT_PROTO_MAX_FRAME];

static void one_frame(const uint8_t *data, size_t size)
{
	struct agent_msg m, m2;
	enum agent_err err;
	size_t n1, n2;
	int r;

	r = agent_proto_decode(data, size, &m, &err);
	if (r != 0) {
		if (err == AGENT_E_NONE || r > 0)
			abort();
		return;
	}
	if (err != AGENT_E_NONE)
		abort();
	if (agent_proto_encode(&m, out1, sizeof(out1), &n1) != 0)
		abort();
	if (agent_proto_decode(out1, n1, &m2, &err) != 0)
		abort();
	if (m2.type != m.type || m2.request_id != m.request_id || m2.version != m.version)
		abort();
	if (agent_proto_encode(&m2, out2, sizeof(out2), &n2) != 0)
		abort();
	if (n1 != n2 || memcmp(out1, out2, n1) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t pos = 0, len;

	/* The whole input as one frame, whatever its header says. */
	one_frame(data, size);
	/* Then as a stream, the way the session code will cut it. */
	while (pos < size) {
		int r = agent_proto_frame_len(data + pos, size - pos, &len);

		if (r != 0 || len > size - pos)
			break;
		if (len < 16 || len > AGENT_PROTO_MAX_FRAME)
			abort();
		one_frame(data + pos, len);
		pos += len;
	}
	return 0;
}
