/* Unit tests for the APTPL store (pr/pr_store.c): the file format round-trips the state exactly,
 * damaged files are refused, and I/O failures come back as errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "pr/pr.h"
#include "pr/pr_store.h"

#define I1 "iqn.2024-01.test:node1,i,0x400000000001"
#define I2 "iqn.2024-01.test:node2,i,0x400000000002"

static struct pr_state S, L;
static char buf[PR_STORE_MAX];

static void sample(struct pr_state *s)
{
	pr_state_init(s);
	s->generation = 0xfffffffe;
	s->aptpl = true;
	s->type = PR_TYPE_WE_RO;
	s->nregs = 2;
	snprintf(s->regs[0].itn.port, PR_PORT_MAX, "%s", I1);
	s->regs[0].itn.rel_port = 1;
	s->regs[0].key = 0xdeadbeefcafef00dull;
	s->regs[0].holder = true;
	snprintf(s->regs[1].itn.port, PR_PORT_MAX, "%s", I2);
	s->regs[1].itn.rel_port = 65535;
	s->regs[1].key = 1;
	s->regs[1].all_tg_pt = true;
}

static void assert_same(const struct pr_state *a, const struct pr_state *b)
{
	assert_int_equal(a->generation, b->generation);
	assert_int_equal(a->aptpl, b->aptpl);
	assert_int_equal(a->type, b->type);
	assert_int_equal(a->scope, b->scope);
	assert_int_equal(a->nregs, b->nregs);
	assert_memory_equal(a->regs, b->regs, a->nregs * sizeof(a->regs[0]));
}

static void test_encode_decode_round_trips_exactly(void **st)
{
	size_t len;

	sample(&S);
	assert_int_equal(pr_store_encode(&S, buf, sizeof(buf), &len), 0);
	assert_int_equal(pr_store_decode(buf, len, &L), 0);
	assert_same(&S, &L);
}

static void test_full_table_fits_the_store(void **st)
{
	size_t len;

	pr_state_init(&S);
	S.aptpl = true;
	for (unsigned i = 0; i < PR_MAX_REGS; i++) {
		/* The longest legal port name. */
		memset(S.regs[i].itn.port, 'a', 223);
		snprintf(S.regs[i].itn.port + 223, PR_PORT_MAX - 223, ",i,0x%012x", i);
		S.regs[i].itn.rel_port = 65535;
		S.regs[i].key = UINT64_MAX - i;
	}
	S.nregs = PR_MAX_REGS;
	assert_int_equal(pr_store_encode(&S, buf, sizeof(buf), &len), 0);
	assert_int_equal(pr_store_decode(buf, len, &L), 0);
	assert_same(&S, &L);
	assert_int_equal(pr_store_encode(&S, buf, 100, &len), -ENOSPC);
}

static void expect_bad(const char *text)
{
	assert_int_equal(pr_store_decode(text, strlen(text), &L), -EBADMSG);
	assert_int_equal(L.nregs, 0);
	assert_int_equal(L.generation, 0);
}

#define HDR "holdfast-pr 1\ngeneration 7\naptpl 1\n"
#define R1  "reg 0000000000000001 1 1 0 " I1 "\n"
#define R2  "reg 0000000000000002 1 0 0 " I2 "\n"

static void test_decode_accepts_a_good_file(void **st)
{
	const char *ok = HDR "reservation 1 0\n" R1 R2 "end 2\n";

	assert_int_equal(pr_store_decode(ok, strlen(ok), &L), 0);
	assert_int_equal(L.generation, 7);
	assert_int_equal(L.type, PR_TYPE_WE);
	assert_true(L.regs[0].holder);
}

static void test_decode_rejects_damaged_files(void **st)
{
	expect_bad("");
	expect_bad("holdfast-pr 2\ngeneration 7\naptpl 1\nreservation 0 0\nend 0\n");
	expect_bad(HDR "reservation 1 0\n" R1 R2);		/* cut short: no end */
	expect_bad(HDR "reservation 1 0\n" R1 R2 "end 3\n");	/* wrong count */
	expect_bad(HDR "reservation 1 0\n" R1 R2 "end 2\nx\n"); /* trailing garbage */
	expect_bad(HDR "reservation 1 0\n" R2 "end 1\n");	/* no holder */
	expect_bad(HDR "reservation 0 0\n" R1 "end 1\n");	/* holder, no reservation */
	expect_bad(HDR "reservation 2 0\n" R1 "end 1\n");	/* invalid type */
	expect_bad(HDR "reservation 1 1\n" R1 "end 1\n");	/* invalid scope */
	expect_bad(HDR "reservation 7 0\nend 0\n");		/* AR with no registrant */
	expect_bad(HDR "reservation 1 0\n" R1 R1 "end 2\n");	/* duplicate nexus */
	expect_bad(HDR "reservation 0 0\nreg 1 1 0 0 noport\nend 1\n");
	expect_bad(HDR "reservation 0 0\nreg -1 1 0 0 " I1 "\nend 1\n");
	expect_bad(HDR "reservation 0 0\nreg 1 65536 0 0 " I1 "\nend 1\n");
	expect_bad("holdfast-pr 1\ngeneration 4294967296\naptpl 1\nreservation 0 0\nend 0\n");
	expect_bad(HDR "reservation 0 0\nend 0"); /* no final newline */
}

/* An I/O table over memory whose write can be told to fail. */
struct mem_io {
	char data[PR_STORE_MAX];
	size_t len;
	bool exists;
	int write_rc;
	int writes;
};

static int mem_write(void *arg, const char *path, const void *data, size_t len)
{
	struct mem_io *m = arg;

	m->writes++;
	if (m->write_rc)
		return m->write_rc;
	memcpy(m->data, data, len);
	m->len = len;
	m->exists = true;
	return 0;
}

static int mem_read(void *arg, const char *path, void *out, size_t cap, size_t *len)
{
	struct mem_io *m = arg;

	if (!m->exists)
		return -ENOENT;
	if (m->len > cap)
		return -EFBIG;
	memcpy(out, m->data, m->len);
	*len = m->len;
	return 0;
}

static struct mem_io MIO;

static void test_save_failure_is_returned_and_keeps_old_file(void **st)
{
	struct pr_store_io io = {mem_write, mem_read, &MIO};

	memset(&MIO, 0, sizeof(MIO));
	sample(&S);
	assert_int_equal(pr_store_save(&io, "x", &S), 0);
	S.generation++;
	MIO.write_rc = -EIO;
	assert_int_equal(pr_store_save(&io, "x", &S), -EIO);
	assert_int_equal(pr_store_load(&io, "x", &L), 0);
	assert_int_equal(L.generation, S.generation - 1);
}

static void test_load_missing_file_is_empty_state(void **st)
{
	struct pr_store_io io = {mem_write, mem_read, &MIO};

	memset(&MIO, 0, sizeof(MIO));
	L.nregs = 3;
	assert_int_equal(pr_store_load(&io, "x", &L), 0);
	assert_int_equal(L.nregs, 0);
}

static void test_load_without_aptpl_restores_nothing(void **st)
{
	struct pr_store_io io = {mem_write, mem_read, &MIO};

	memset(&MIO, 0, sizeof(MIO));
	sample(&S);
	S.aptpl = false;
	assert_int_equal(pr_store_save(&io, "x", &S), 0);
	assert_int_equal(pr_store_load(&io, "x", &L), 0);
	assert_int_equal(L.nregs, 0);
	assert_int_equal(L.generation, 0);
}

static void test_load_damaged_file_fails(void **st)
{
	struct pr_store_io io = {mem_write, mem_read, &MIO};

	memset(&MIO, 0, sizeof(MIO));
	MIO.exists = true;
	MIO.len = (size_t)snprintf(MIO.data, sizeof(MIO.data), "holdfast-pr 1\ngarbage\n");
	assert_int_equal(pr_store_load(&io, "x", &L), -EBADMSG);
	assert_int_equal(L.nregs, 0);
}

static void test_posix_store_round_trips_through_a_real_file(void **st)
{
	char dir[] = "/tmp/test_pr_store.XXXXXX", path[128];

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/pr-test.state", dir);
	sample(&S);
	assert_int_equal(pr_store_save(&pr_store_posix, path, &S), 0);
	assert_int_equal(pr_store_load(&pr_store_posix, path, &L), 0);
	assert_same(&S, &L);
	unlink(path);
	assert_int_equal(pr_store_load(&pr_store_posix, path, &L), 0);
	assert_int_equal(L.nregs, 0);
	rmdir(dir);
	/* A folder that does not exist cannot be written. */
	assert_true(pr_store_save(&pr_store_posix, "/nonexistent-holdfast/pr.state", &S) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_decode_round_trips_exactly),
		cmocka_unit_test(test_full_table_fits_the_store),
		cmocka_unit_test(test_decode_accepts_a_good_file),
		cmocka_unit_test(test_decode_rejects_damaged_files),
		cmocka_unit_test(test_save_failure_is_returned_and_keeps_old_file),
		cmocka_unit_test(test_load_missing_file_is_empty_state),
		cmocka_unit_test(test_load_without_aptpl_restores_nothing),
		cmocka_unit_test(test_load_damaged_file_fails),
		cmocka_unit_test(test_posix_store_round_trips_through_a_real_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
