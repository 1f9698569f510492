/* What the engine's files share and nothing outside pr/ uses. */
#ifndef HOLDFAST_PR_PR_INT_H
#define HOLDFAST_PR_PR_INT_H

#include "pr/pr.h"

/* spc4r37 6.15.3.4, table 164. */
static inline bool pr_type_valid(uint8_t type)
{
	switch (type) {
	case PR_TYPE_WE:
	case PR_TYPE_EA:
	case PR_TYPE_WE_RO:
	case PR_TYPE_EA_RO:
	case PR_TYPE_WE_AR:
	case PR_TYPE_EA_AR:
		return true;
	default:
		return false;
	}
}

static inline bool pr_type_ar(uint8_t type)
{
	return type == PR_TYPE_WE_AR || type == PR_TYPE_EA_AR;
}

static inline bool pr_type_ro(uint8_t type)
{
	return type == PR_TYPE_WE_RO || type == PR_TYPE_EA_RO;
}

/* spc4r37 5.13.10: every registrant holds an all-registrants reservation; otherwise the one
 * registration that made (or was moved or preempted into) the reservation does. */
static inline bool pr_is_holder(const struct pr_state *s, const struct pr_reg *r)
{
	if (s->type == PR_TYPE_NONE)
		return false;
	return pr_type_ar(s->type) || r->holder;
}

/* GOOD, no sense, nothing to queue or abort (the big arrays are left as they are). */
void pr_result_reset(struct pr_result *res);

int pr_index(const struct pr_state *s, const char *port, uint16_t rel_port);

#endif
