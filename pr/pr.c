/* The persistent reservation state: lookups shared by the PR IN and PR OUT halves. */
#include <string.h>

#include "pr/pr_int.h"

void pr_state_init(struct pr_state *s)
{
	memset(s, 0, sizeof(*s));
}

int pr_index(const struct pr_state *s, const char *port, uint16_t rel_port)
{
	for (uint32_t i = 0; i < s->nregs; i++) {
		const struct pr_reg *r = &s->regs[i];

		if (r->itn.rel_port == rel_port && strcmp(r->itn.port, port) == 0)
			return (int)i;
	}
	return -1;
}

const struct pr_reg *pr_find(const struct pr_state *s, const char *port, uint16_t rel_port)
{
	int i = pr_index(s, port, rel_port);

	return i < 0 ? NULL : &s->regs[i];
}

void pr_result_reset(struct pr_result *res)
{
	res->status = SCSI_STATUS_GOOD;
	memset(&res->sense, 0, sizeof(res->sense));
	res->changed = false;
	res->persist = false;
	res->nua = 0;
	res->nabort = 0;
}
