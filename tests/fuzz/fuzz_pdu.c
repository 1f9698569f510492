/* libFuzzer target: one BHS through iscsi_pdu_parse, the bytes after it as a text segment,
 * the LUN field through iscsi_lun_decode, and the digest paths against each other. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "lib/crc32c.h"
#include "target/iscsi_pdu.h"
#include "target/iscsi_text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct iscsi_kv kv[ISCSI_TEXT_MAX_PAIRS];
	struct iscsi_pdu p;
	uint8_t reason;
	uint64_t lun;
	size_t n;

	if (iscsi_pdu_parse(data, size, &p, &reason) == 0) {
		if (p.opcode == ISCSI_OP_SCSI_CMD && p.ahs_len > ISCSI_MAX_AHS_LEN)
			abort();
		if (iscsi_lun_decode(p.lun, &lun) == 0 && lun >= 16384)
			abort();
		if (size > ISCSI_BHS_LEN)
			iscsi_text_parse(data + ISCSI_BHS_LEN, size - ISCSI_BHS_LEN, kv,
					 ISCSI_TEXT_MAX_PAIRS, &n);
	} else if (reason == 0) {
		abort(); /* every failure must say which reject reason applies */
	}
	if (crc32c(0, data, size) != crc32c_portable(0, data, size))
		abort();
	return 0;
}
