/* The agent's catalog requests: messages to the catalog part's commands (agent_catalog.c),
 * its JSON answers back to frames (several for a list, an ERROR with the right code for a
 * refusal, ERROR INTERNAL for what the protocol cannot carry), and the holdfast-agent command
 * line that makes the requests (agent_vdisk.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "agent/agent_vdisk.h"
#include "csv-coord/agent_catalog.h"

#define VID "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"

static struct agent_msg got[8];
static unsigned ngot;

static void collect(void *ctx, struct agent_msg *m)
{
	(void)ctx;
	assert_true(ngot < 8);
	got[ngot++] = *m;
}

static json_t *disk(const char *name, json_int_t lun, const char *owner, const char *host)
{
	return json_pack("{s:s, s:s, s:s, s:I, s:s, s:I, s:o, s:I, s:s, s:s, s:[s]}", "id", VID,
			 "name", name, "pool", "pool1", "size", (json_int_t)1 << 30, "target",
			 "iqn.2026-11.org.holdfast:cluster", "lun", lun, "owner",
			 owner ? json_string(owner) : json_null(), "epoch", (json_int_t)4, "state",
			 "ready", "vm", "", "hosts", host);
}

static void test_requests_become_the_catalog_commands(void **state)
{
	struct agent_msg m;
	const char *cmd;
	json_t *req;

	memset(&m, 0, sizeof(m));
	m.type = AGENT_MSG_VDISK_TRANSFER;
	snprintf(m.u.vd_op.id, sizeof(m.u.vd_op.id), "%s", VID);
	m.u.vd_op.epoch = 7;
	snprintf(m.u.vd_op.to_host, sizeof(m.u.vd_op.to_host), "kvm2");
	assert_int_equal(agent_catalog_request(&m, &cmd, &req), AGENT_E_NONE);
	assert_string_equal(cmd, "vdisk_transfer");
	assert_string_equal(json_string_value(json_object_get(req, "id")), VID);
	assert_int_equal(json_integer_value(json_object_get(req, "epoch")), 7);
	assert_string_equal(json_string_value(json_object_get(req, "to")), "kvm2");
	/* Never a host of the agent's choosing for itself: the catalog part adds it. */
	assert_null(json_object_get(req, "from"));
	assert_null(json_object_get(req, "host"));
	json_decref(req);

	m.type = AGENT_MSG_POOL_REMOVE;
	snprintf(m.u.pool.name, sizeof(m.u.pool.name), "fast");
	assert_int_equal(agent_catalog_request(&m, &cmd, &req), AGENT_E_NONE);
	assert_string_equal(cmd, "pool_remove");
	json_decref(req);

	/* Box-to-agent messages are not requests. */
	m.type = AGENT_MSG_VDISK_INFO;
	assert_int_equal(agent_catalog_request(&m, &cmd, &req), AGENT_E_UNEXPECTED);
	m.type = AGENT_MSG_VDISK_DELETED;
	assert_int_equal(agent_catalog_request(&m, &cmd, &req), AGENT_E_UNEXPECTED);
}

static void test_refusals_keep_their_code(void **state)
{
	static const struct {
		const char *code;
		enum agent_err err;
	} cases[] = {
		{"forbidden", AGENT_E_FORBIDDEN},
		{"not_owner", AGENT_E_FORBIDDEN},
		{"stale_epoch", AGENT_E_STALE_EPOCH},
		{"no_quorum", AGENT_E_NO_QUORUM},
		{"in_use", AGENT_E_IN_USE},
		{"busy", AGENT_E_BUSY},
		{"io", AGENT_E_INTERNAL},
		{NULL, AGENT_E_INTERNAL},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *r = json_pack("{s:s}", "error", "why");

		if (cases[i].code)
			json_object_set_new(r, "code", json_string(cases[i].code));
		ngot = 0;
		assert_int_equal(
			agent_catalog_reply(AGENT_MSG_VDISK_EXTEND, 31, NULL, "kvm1", r, collect, NULL),
			1);
		assert_int_equal(got[0].type, AGENT_MSG_ERROR);
		assert_int_equal(got[0].request_id, 31);
		assert_int_equal(got[0].u.error.code, cases[i].err);
		assert_int_equal(got[0].u.error.ref_type, AGENT_MSG_VDISK_EXTEND);
		assert_string_equal(got[0].u.error.text, "why");
		json_decref(r);
	}
	assert_int_equal(agent_vdisk_exit_code(AGENT_E_FORBIDDEN), 10);
	assert_int_equal(agent_vdisk_exit_code(AGENT_E_STALE_EPOCH), 11);
	assert_int_equal(agent_vdisk_exit_code(AGENT_E_INTERNAL), 8);
	assert_string_equal(agent_vdisk_code_name(AGENT_E_IN_USE), "in_use");
}

static void test_a_list_is_one_info_per_disk_then_the_end(void **state)
{
	json_t *r = json_pack("{s:[o, o, o]}", "vdisks", disk("a", 1, "kvm1", "kvm1"),
			      disk("b", 2, NULL, "kvm2"), disk("bad", 99999, NULL, "kvm2"));

	ngot = 0;
	/* The third disk's LUN is beyond what the protocol carries: left out, and counted out. */
	assert_int_equal(agent_catalog_reply(AGENT_MSG_VDISK_LIST, 5, NULL, "kvm1", r, collect, NULL), 3);
	assert_int_equal(ngot, 3);
	assert_int_equal(got[0].type, AGENT_MSG_VDISK_INFO);
	assert_string_equal(got[0].u.vd_info.name, "a");
	assert_string_equal(got[0].u.vd_info.owner, "kvm1");
	assert_int_equal(got[0].u.vd_info.attached, 1);
	assert_int_equal(got[0].u.vd_info.state, 2);
	assert_int_equal(got[0].u.vd_info.epoch, 4);
	assert_int_equal(got[1].u.vd_info.attached, 0);
	assert_string_equal(got[1].u.vd_info.owner, "");
	assert_int_equal(got[2].type, AGENT_MSG_VDISK_LIST_END);
	assert_int_equal(got[2].u.vd_end.count, 2);
	for (unsigned i = 0; i < ngot; i++)
		assert_int_equal(got[i].request_id, 5);
	json_decref(r);
}

static void test_single_answers_and_what_cannot_be_carried(void **state)
{
	json_t *r = json_pack("{s:o}", "vdisk", disk("a", 1, "kvm2", "kvm1"));

	ngot = 0;
	agent_catalog_reply(AGENT_MSG_VDISK_TRANSFER, 6, NULL, "kvm1", r, collect, NULL);
	assert_int_equal(got[0].type, AGENT_MSG_VDISK_INFO);
	assert_string_equal(got[0].u.vd_info.owner, "kvm2");
	json_decref(r);

	r = json_pack("{s:s, s:i}", "deleted", VID, "lun", 1);
	ngot = 0;
	agent_catalog_reply(AGENT_MSG_VDISK_DELETE, 7, NULL, "kvm1", r, collect, NULL);
	assert_int_equal(got[0].type, AGENT_MSG_VDISK_DELETED);
	assert_string_equal(got[0].u.vd_op.id, VID);
	json_decref(r);

	/* An answer without the disk, and a disk the protocol cannot carry: ERROR INTERNAL. */
	r = json_object();
	ngot = 0;
	agent_catalog_reply(AGENT_MSG_VDISK_ATTACH, 8, NULL, "kvm1", r, collect, NULL);
	assert_int_equal(got[0].type, AGENT_MSG_ERROR);
	assert_int_equal(got[0].u.error.code, AGENT_E_INTERNAL);
	json_decref(r);
	r = json_pack("{s:o}", "vdisk", disk("a", 99999, NULL, "kvm1"));
	ngot = 0;
	agent_catalog_reply(AGENT_MSG_VDISK_ATTACH, 9, NULL, "kvm1", r, collect, NULL);
	assert_int_equal(ngot, 1);
	assert_int_equal(got[0].type, AGENT_MSG_ERROR);
	assert_int_equal(got[0].u.error.code, AGENT_E_INTERNAL);
	assert_int_equal(got[0].request_id, 9);
	json_decref(r);
}

static int parse(struct agent_vdisk_cmd *c, char *err, const char *const *args)
{
	char *argv[16];
	int argc = 0;

	while (args[argc]) {
		argv[argc] = (char *)args[argc];
		argc++;
	}
	argv[argc] = NULL;
	return agent_vdisk_parse(argc, argv, c, err, 200);
}

static void test_command_line(void **state)
{
	struct agent_vdisk_cmd c;
	char err[200];

	assert_int_equal(parse(&c, err,
			       (const char *const[]){"vdisk", "transfer", "--state-dir", "/s", VID,
						     "kvm2", "--epoch", "3", "--json", NULL}),
			 0);
	assert_int_equal(c.req.type, AGENT_MSG_VDISK_TRANSFER);
	assert_string_equal(c.req.u.vd_op.id, VID);
	assert_string_equal(c.req.u.vd_op.to_host, "kvm2");
	assert_int_equal(c.req.u.vd_op.epoch, 3);
	assert_true(c.json);
	assert_string_equal(c.state_dir, "/s");

	assert_int_equal(parse(&c, err,
			       (const char *const[]){"vdisk", "create", "pool1", "d1", "64M",
						     "--state-dir", "/s", NULL}),
			 0);
	assert_int_equal(c.req.u.vd_create.size, 64ull << 20);

	assert_int_equal(parse(&c, err,
			       (const char *const[]){"vdisk", "extend", VID, "1G", "--state-dir",
						     "/s", NULL}),
			 -EINVAL);
	assert_non_null(strstr(err, "--epoch"));
	assert_int_equal(parse(&c, err,
			       (const char *const[]){"vdisk", "create", "p", "d", "lots",
						     "--state-dir", "/s", NULL}),
			 -EINVAL);
	assert_non_null(strstr(err, "bad size"));
	assert_int_equal(parse(&c, err,
			       (const char *const[]){"vdisk", "attach", VID, "--epoch", "0",
						     "--state-dir", "/s", NULL}),
			 -EINVAL);
	assert_int_equal(
		parse(&c, err,
		      (const char *const[]){"vdisk", "list", "--state-dir", "/s", "extra", NULL}),
		-EINVAL);
	assert_int_equal(parse(&c, err, (const char *const[]){"vdisk", "list", NULL}), -EINVAL);
	assert_non_null(strstr(err, "--state-dir"));
	assert_int_equal(
		parse(&c, err, (const char *const[]){"vdisk", "rename", "--state-dir", "/s", NULL}),
		-EINVAL);
	assert_int_equal(parse(&c, err,
			       (const char *const[]){"pool", "add", "fast", "/srv/fast",
						     "--state-dir", "/s", NULL}),
			 0);
	assert_int_equal(c.req.type, AGENT_MSG_POOL_ADD);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_requests_become_the_catalog_commands),
		cmocka_unit_test(test_refusals_keep_their_code),
		cmocka_unit_test(test_a_list_is_one_info_per_disk_then_the_end),
		cmocka_unit_test(test_single_answers_and_what_cannot_be_carried),
		cmocka_unit_test(test_command_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
