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
		assert_int_equal(agent_catalog_reply(AGENT_MSG_VDISK_EXTEND, 31, NULL, "kvm1", r,
						     collect, NULL),
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

	/* Distinct ids, in the order the list is sent (id order). */
	json_object_set_new(json_array_get(json_object_get(r, "vdisks"), 1), "id",
			    json_string("1f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"));
	json_object_set_new(json_array_get(json_object_get(r, "vdisks"), 2), "id",
			    json_string("2f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"));
	ngot = 0;
	/* The third disk's LUN is beyond what the protocol carries: left out, and counted out. */
	assert_int_equal(
		agent_catalog_reply(AGENT_MSG_VDISK_LIST, 5, NULL, "kvm1", r, collect, NULL), 3);
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

/* Paging (agent-protocol.md, "Paging") over a few thousand disks, walked as holdfast-agent
 * does: every disk exactly once, in id order, each page under the coord's 1 MiB output limit. */
static struct {
	unsigned infos, ends, more;
	size_t bytes;
	char last[AGENT_VDISK_ID_MAX + 1];
	char next[AGENT_VDISK_ID_MAX + 1];
	uint32_t count;
	bool ordered;
	unsigned char seen[5000];
} pg;

static void page_collect(void *ctx, struct agent_msg *m)
{
	static uint8_t buf[AGENT_PROTO_MAX_FRAME];
	size_t len;
	unsigned n;

	(void)ctx;
	m->version = 1;
	assert_int_equal(agent_proto_encode(m, buf, sizeof(buf), &len), 0);
	pg.bytes += len;
	if (m->type == AGENT_MSG_VDISK_INFO) {
		pg.infos++;
		if (pg.last[0] && strcmp(m->u.vd_info.id, pg.last) <= 0)
			pg.ordered = false;
		snprintf(pg.last, sizeof(pg.last), "%s", m->u.vd_info.id);
		assert_int_equal(sscanf(m->u.vd_info.id, "%8u-", &n), 1);
		assert_true(n < 5000);
		pg.seen[n]++;
		return;
	}
	assert_int_equal(m->type, AGENT_MSG_VDISK_LIST_END);
	pg.ends++;
	pg.count = m->u.vd_end.count;
	pg.more = m->u.vd_end.more;
	snprintf(pg.next, sizeof(pg.next), "%s", m->u.vd_end.start_after);
}

static json_t *many_disks(unsigned n)
{
	json_t *list = json_array();
	char id[40], name[64], vm[40];

	/* UUID-long ids and long names, out of id order, as a catalog may keep them. */
	for (unsigned k = 0; k < n; k++) {
		unsigned i = (k * 7919u) % n;
		json_t *d = disk("x", (json_int_t)(i % 16384), "kvm1", "kvm1");

		snprintf(id, sizeof(id), "%08u-7a43-4b4e-9d0e-4c3c2b1a0f00", i);
		snprintf(name, sizeof(name), "tenant-a-vm-%04u-system-disk-0-thin-provisioned", i);
		snprintf(vm, sizeof(vm), "tenant-a-vm-%04u", i);
		json_object_set_new(d, "id", json_string(id));
		json_object_set_new(d, "name", json_string(name));
		json_object_set_new(d, "vm", json_string(vm));
		json_array_append_new(list, d);
	}
	return json_pack("{s:o}", "vdisks", list);
}

/* Walk the pages like the agent; returns the number of pages. */
static unsigned walk(json_t *r, uint32_t limit, size_t *max_page_bytes)
{
	struct agent_vdisk_list q;
	unsigned pages = 0;

	memset(&pg, 0, sizeof(pg));
	pg.ordered = true;
	memset(&q, 0, sizeof(q));
	q.limit = limit;
	*max_page_bytes = 0;
	for (;;) {
		size_t before = pg.bytes;

		agent_catalog_reply(AGENT_MSG_VDISK_LIST, 9, &q, "kvm1", r, page_collect, NULL);
		pages++;
		if (pg.bytes - before > *max_page_bytes)
			*max_page_bytes = pg.bytes - before;
		if (!pg.more)
			break;
		/* The box must move on, or the agent would walk forever. */
		assert_true(strcmp(pg.next, q.start_after) > 0);
		snprintf(q.start_after, sizeof(q.start_after), "%s", pg.next);
		assert_true(pages < 10000);
	}
	return pages;
}

static void test_a_long_list_comes_in_pages(void **state)
{
	json_t *r = many_disks(5000);
	size_t max_page, whole;
	unsigned pages;

	/* Without a limit (an older agent): pages of AGENT_LIST_PAGE_MAX disks. */
	pages = walk(r, 0, &max_page);
	assert_int_equal(pages, 5);
	assert_int_equal(pg.infos, 5000);
	assert_int_equal(pg.ends, 5);
	assert_true(pg.ordered);
	for (unsigned i = 0; i < 5000; i++)
		assert_int_equal(pg.seen[i], 1);
	whole = pg.bytes;
	print_message("5000 disks: %zu bytes in all, largest page %zu bytes\n", whole, max_page);
	/* The whole list in one go would pass the coord's 1 MiB per-connection output limit; a
	 * page stays far below it. */
	assert_true(whole > 1024 * 1024);
	assert_true(max_page < 1024 * 1024 / 3);

	/* A small limit: 5000 / 7 pages, rounded up, the last with count 2. */
	pages = walk(r, 7, &max_page);
	assert_int_equal(pages, 715);
	assert_int_equal(pg.infos, 5000);
	assert_int_equal(pg.count, 5000 - 714 * 7);
	assert_true(pg.ordered);
	/* A limit above the box's page is cut to it. */
	assert_int_equal(walk(r, 100000, &max_page), 5);
	json_decref(r);
	/* Exactly one page's worth: no empty last page. */
	r = many_disks(AGENT_LIST_PAGE_MAX);
	assert_int_equal(walk(r, 0, &max_page), 1);
	assert_int_equal(pg.infos, AGENT_LIST_PAGE_MAX);
	json_decref(r);
}

static void test_a_page_moves_past_a_disk_it_cannot_carry(void **state)
{
	json_t *r = many_disks(20);
	size_t max_page;

	/* Disk 4 has a LUN the protocol cannot carry: with pages of 5 it ends the first page,
	 * which still says to go on after it. */
	for (unsigned k = 0; k < 20; k++) {
		json_t *d = json_array_get(json_object_get(r, "vdisks"), k);

		if (!strcmp(json_string_value(json_object_get(d, "id")),
			    "00000004-7a43-4b4e-9d0e-4c3c2b1a0f00"))
			json_object_set_new(d, "lun", json_integer(99999));
	}
	assert_int_equal(walk(r, 5, &max_page), 4);
	assert_int_equal(pg.infos, 19);
	assert_int_equal(pg.seen[4], 0);
	assert_int_equal(pg.seen[5], 1);
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
		cmocka_unit_test(test_a_long_list_comes_in_pages),
		cmocka_unit_test(test_a_page_moves_past_a_disk_it_cannot_carry),
		cmocka_unit_test(test_single_answers_and_what_cannot_be_carried),
		cmocka_unit_test(test_command_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
