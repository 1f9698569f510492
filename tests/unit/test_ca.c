/* Tests for csv-coord/ca.c: the CA is created once with private key files and loaded the same
 * later; it signs a request into a client certificate for the host name it is given, with a
 * serial that never repeats; it refuses bad names, bad requests and keys of the wrong kind,
 * and a CA folder whose key is missing or does not match. The certificates are inspected
 * with mbedTLS directly, as any peer would. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/ecp.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>
#include <mbedtls/x509_csr.h>

#include "csv-coord/ca.h"
#include "lib/tls.h"

struct fx {
	char dir[64];
	time_t now;
	struct ca *ca;
};

static const char *const ca_files[] = {CA_KEY_FILE, CA_CERT_FILE, CA_SERIAL_FILE,
				       CA_SERVER_KEY_FILE, CA_SERVER_CRT_FILE};

static void file_path(const struct fx *f, const char *name, char *out)
{
	snprintf(out, PATH_MAX, "%s/%s", f->dir, name);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	/* The CA folder itself does not exist yet: ca_open makes it. */
	strcpy(f->dir, "/tmp/hf-ca-test-XXXXXX");
	if (!mkdtemp(f->dir) || rmdir(f->dir))
		return -1;
	f->now = time(NULL);
	if (ca_open(&f->ca, f->dir, "box1", f->now))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char p[PATH_MAX];
	size_t i;

	ca_close(f->ca);
	for (i = 0; i < sizeof(ca_files) / sizeof(ca_files[0]); i++) {
		file_path(f, ca_files[i], p);
		unlink(p);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

static void reopen(struct fx *f, const char *box, time_t now)
{
	ca_close(f->ca);
	f->ca = NULL;
	assert_int_equal(ca_open(&f->ca, f->dir, box, now), 0);
}

static void parse_crt(mbedtls_x509_crt *crt, const char *pem, size_t len)
{
	mbedtls_x509_crt_init(crt);
	assert_int_equal(mbedtls_x509_crt_parse(crt, (const unsigned char *)pem, len + 1), 0);
}

static void crt_cn(const mbedtls_x509_crt *crt, char *out, size_t len)
{
	const mbedtls_x509_name *n;

	for (n = &crt->subject; n; n = n->next)
		if (!MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid))
			break;
	assert_non_null(n);
	assert_true(n->val.len < len);
	memcpy(out, n->val.p, n->val.len);
	out[n->val.len] = '\0';
}

static void sign(struct fx *f, const char *csr_cn, const char *host, char **cert, size_t *len,
		 uint64_t *serial)
{
	char *key, *csr;
	size_t key_len, csr_len;

	assert_int_equal(ca_make_csr(csr_cn, &key, &key_len, &csr, &csr_len), 0);
	assert_int_equal(ca_sign_csr(f->ca, csr, csr_len, host, f->now, 30, cert, len, serial), 0);
	free(key);
	free(csr);
}

static void test_first_start_creates_files_with_private_keys_0600(void **state)
{
	struct fx *f = *state;
	char p[PATH_MAX];
	struct stat st;

	assert_int_equal(stat(f->dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	file_path(f, CA_KEY_FILE, p);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	file_path(f, CA_SERVER_KEY_FILE, p);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	file_path(f, CA_CERT_FILE, p);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
}

static void test_ca_certificate_is_a_self_signed_p256_ca(void **state)
{
	struct fx *f = *state;
	mbedtls_x509_crt crt;
	uint32_t flags = 0;
	const char *pem;
	size_t len;

	pem = ca_cert_pem(f->ca, &len);
	parse_crt(&crt, pem, len);
	assert_true(crt.ca_istrue);
	assert_int_equal(mbedtls_pk_get_type(&crt.pk), MBEDTLS_PK_ECKEY);
	assert_int_equal(mbedtls_pk_ec(crt.pk)->grp.id, MBEDTLS_ECP_DP_SECP256R1);
	assert_int_equal(mbedtls_x509_crt_verify(&crt, &crt, NULL, NULL, &flags, NULL, NULL), 0);
	mbedtls_x509_crt_free(&crt);
}

static void test_later_start_loads_the_same_ca(void **state)
{
	struct fx *f = *state;
	uint8_t fp[TLS_FINGERPRINT_LEN];
	char *srv;
	size_t len;
	uint64_t serial = ca_last_serial(f->ca);

	memcpy(fp, ca_fingerprint(f->ca), sizeof(fp));
	srv = strdup(ca_server_cert_pem(f->ca, &len));
	reopen(f, "box1", f->now + 60);
	assert_memory_equal(ca_fingerprint(f->ca), fp, sizeof(fp));
	assert_int_equal(ca_last_serial(f->ca), serial);
	/* The server certificate is still good, so it is kept. */
	assert_string_equal(ca_server_cert_pem(f->ca, &len), srv);
	free(srv);
}

static void test_server_chain_is_for_the_box_and_ends_with_the_ca(void **state)
{
	struct fx *f = *state;
	const char *srv, *ca_pem;
	mbedtls_x509_crt chain, ca;
	size_t srv_len, ca_len;
	uint32_t flags = 0;
	char cn[64];

	srv = ca_server_cert_pem(f->ca, &srv_len);
	ca_pem = ca_cert_pem(f->ca, &ca_len);
	assert_true(srv_len > ca_len);
	assert_string_equal(srv + srv_len - ca_len, ca_pem);
	parse_crt(&chain, srv, srv_len);
	parse_crt(&ca, ca_pem, ca_len);
	crt_cn(&chain, cn, sizeof(cn));
	assert_string_equal(cn, "box1");
	assert_false(chain.ca_istrue);
	assert_int_equal(mbedtls_x509_crt_verify(&chain, &ca, NULL, "box1", &flags, NULL, NULL), 0);
	assert_int_equal(
		mbedtls_x509_crt_check_extended_key_usage(
			&chain, MBEDTLS_OID_SERVER_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)),
		0);
	mbedtls_x509_crt_free(&chain);
	mbedtls_x509_crt_free(&ca);
}

static void test_server_certificate_is_reissued_for_a_new_name_or_near_expiry(void **state)
{
	struct fx *f = *state;
	mbedtls_x509_crt crt;
	const char *pem;
	char *before, cn[64];
	size_t len;

	before = strdup(ca_server_cert_pem(f->ca, &len));
	reopen(f, "box2", f->now);
	pem = ca_server_cert_pem(f->ca, &len);
	assert_string_not_equal(pem, before);
	parse_crt(&crt, pem, len);
	crt_cn(&crt, cn, sizeof(cn));
	assert_string_equal(cn, "box2");
	mbedtls_x509_crt_free(&crt);
	free(before);

	before = strdup(pem);
	reopen(f, "box2", f->now + (time_t)(CA_SERVER_DAYS - CA_SERVER_RENEW_DAYS - 1) * 86400);
	assert_string_equal(ca_server_cert_pem(f->ca, &len), before);
	reopen(f, "box2", f->now + (time_t)(CA_SERVER_DAYS - CA_SERVER_RENEW_DAYS + 1) * 86400);
	assert_string_not_equal(ca_server_cert_pem(f->ca, &len), before);
	free(before);
}

static void test_signed_certificate_names_the_host_and_is_for_clients_only(void **state)
{
	struct fx *f = *state;
	mbedtls_x509_crt crt, ca;
	const char *ca_pem;
	size_t len, ca_len;
	uint32_t flags = 0;
	uint64_t serial;
	char *cert, cn[64];

	/* The request asks for another name; the CA writes the one the join was for. */
	sign(f, "evil", "host1", &cert, &len, &serial);
	parse_crt(&crt, cert, len);
	ca_pem = ca_cert_pem(f->ca, &ca_len);
	parse_crt(&ca, ca_pem, ca_len);
	crt_cn(&crt, cn, sizeof(cn));
	assert_string_equal(cn, "host1");
	assert_false(crt.ca_istrue);
	/* DER integers are minimal, so the serial's low byte is the last one. */
	assert_true(crt.serial.len >= 1 && crt.serial.len <= 8);
	assert_int_equal(crt.serial.p[crt.serial.len - 1], serial & 0xff);
	assert_int_equal(mbedtls_x509_crt_verify(&crt, &ca, NULL, NULL, &flags, NULL, NULL), 0);
	assert_int_equal(
		mbedtls_x509_crt_check_extended_key_usage(
			&crt, MBEDTLS_OID_CLIENT_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)),
		0);
	assert_int_not_equal(
		mbedtls_x509_crt_check_extended_key_usage(
			&crt, MBEDTLS_OID_SERVER_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)),
		0);
	mbedtls_x509_crt_free(&crt);
	mbedtls_x509_crt_free(&ca);
	free(cert);
}

static void test_serials_increase_and_survive_a_restart(void **state)
{
	struct fx *f = *state;
	uint64_t a, b, c;
	char *cert;
	size_t len;

	sign(f, "host1", "host1", &cert, &len, &a);
	free(cert);
	sign(f, "host2", "host2", &cert, &len, &b);
	free(cert);
	assert_int_equal(b, a + 1);
	reopen(f, "box1", f->now);
	sign(f, "host3", "host3", &cert, &len, &c);
	free(cert);
	assert_int_equal(c, b + 1);
}

static void test_request_with_a_bad_signature_is_refused(void **state)
{
	struct fx *f = *state;
	unsigned char der[1024], pem[2048];
	char *key, *csr, *cert = NULL;
	size_t key_len, csr_len, der_len, pem_len, len;
	uint64_t serial, before = ca_last_serial(f->ca);
	mbedtls_pem_context ctx;

	assert_int_equal(ca_make_csr("host1", &key, &key_len, &csr, &csr_len), 0);
	mbedtls_pem_init(&ctx);
	assert_int_equal(mbedtls_pem_read_buffer(&ctx, "-----BEGIN CERTIFICATE REQUEST-----",
						 "-----END CERTIFICATE REQUEST-----",
						 (const unsigned char *)csr, NULL, 0, &len),
			 0);
	der_len = ctx.buflen;
	memcpy(der, ctx.buf, der_len);
	mbedtls_pem_free(&ctx);
	/* The last byte belongs to the signature's s value: still DER, no longer valid. */
	der[der_len - 1] ^= 0x01;
	assert_int_equal(mbedtls_pem_write_buffer("-----BEGIN CERTIFICATE REQUEST-----\n",
						  "-----END CERTIFICATE REQUEST-----\n", der,
						  der_len, pem, sizeof(pem), &pem_len),
			 0);
	assert_int_equal(ca_sign_csr(f->ca, (char *)pem, strlen((char *)pem), "host1", f->now, 30,
				     &cert, &len, &serial),
			 -EBADMSG);
	assert_null(cert);
	assert_int_equal(ca_last_serial(f->ca), before);
	free(key);
	free(csr);
}

static void test_garbage_request_is_refused(void **state)
{
	struct fx *f = *state;
	char *cert = NULL;
	size_t len;
	uint64_t serial;

	assert_int_equal(
		ca_sign_csr(f->ca, "not a request", 13, "host1", f->now, 30, &cert, &len, &serial),
		-EBADMSG);
	assert_null(cert);
}

static int rng(void *ctx, unsigned char *buf, size_t len)
{
	return tls_random(buf, len) ? -1 : 0;
}

static void test_request_with_another_key_type_is_refused(void **state)
{
	struct fx *f = *state;
	unsigned char pem[4096];
	mbedtls_x509write_csr w;
	mbedtls_pk_context key;
	char *cert = NULL;
	size_t len;
	uint64_t serial;

	mbedtls_pk_init(&key);
	assert_int_equal(mbedtls_pk_setup(&key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)), 0);
	assert_int_equal(
		mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP384R1, mbedtls_pk_ec(key), rng, NULL), 0);
	mbedtls_x509write_csr_init(&w);
	mbedtls_x509write_csr_set_key(&w, &key);
	mbedtls_x509write_csr_set_md_alg(&w, MBEDTLS_MD_SHA256);
	assert_int_equal(mbedtls_x509write_csr_set_subject_name(&w, "CN=host1"), 0);
	assert_int_equal(mbedtls_x509write_csr_pem(&w, pem, sizeof(pem), rng, NULL), 0);
	assert_int_equal(ca_sign_csr(f->ca, (char *)pem, strlen((char *)pem), "host1", f->now, 30,
				     &cert, &len, &serial),
			 -EKEYREJECTED);
	mbedtls_x509write_csr_free(&w);
	mbedtls_pk_free(&key);
}

static void test_names_that_could_change_the_subject_are_refused(void **state)
{
	static const char *const bad[] = {
		"",
		"-host",
		".host",
		"host one",
		"host,O=evil",
		"CN=host",
		"host\\",
		"h\xc3\xa9",
		"0123456789012345678901234567890123456789012345678901234567890123",
	};
	struct fx *f = *state;
	char *key, *csr, *cert = NULL;
	size_t key_len, csr_len, len, i;
	uint64_t serial;

	assert_true(ca_name_valid("host-1.example"));
	assert_true(
		ca_name_valid("012345678901234567890123456789012345678901234567890123456789012"));
	assert_int_equal(ca_make_csr("host1", &key, &key_len, &csr, &csr_len), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(ca_name_valid(bad[i]));
		assert_int_equal(
			ca_sign_csr(f->ca, csr, csr_len, bad[i], f->now, 30, &cert, &len, &serial),
			-EINVAL);
	}
	assert_null(cert);
	free(key);
	free(csr);
}

static void test_certificate_without_its_key_is_refused(void **state)
{
	struct fx *f = *state;
	struct ca *ca = NULL;
	char p[PATH_MAX];

	file_path(f, CA_KEY_FILE, p);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(ca_open(&ca, f->dir, "box1", f->now), -ENOKEY);
	assert_null(ca);
	/* And the certificate was not replaced by a new CA. */
	file_path(f, CA_CERT_FILE, p);
	assert_int_equal(access(p, F_OK), 0);
}

static void test_key_of_another_ca_is_refused(void **state)
{
	struct fx *f = *state;
	char other[64], from[PATH_MAX], to[PATH_MAX];
	struct ca *ca = NULL, *o;
	size_t i;

	strcpy(other, "/tmp/hf-ca-test-XXXXXX");
	assert_non_null(mkdtemp(other));
	assert_int_equal(ca_open(&o, other, "box1", f->now), 0);
	ca_close(o);
	snprintf(from, sizeof(from), "%s/%s", other, CA_KEY_FILE);
	file_path(f, CA_KEY_FILE, to);
	assert_int_equal(rename(from, to), 0);
	assert_int_equal(ca_open(&ca, f->dir, "box1", f->now), -EKEYREJECTED);
	for (i = 0; i < sizeof(ca_files) / sizeof(ca_files[0]); i++) {
		snprintf(from, sizeof(from), "%s/%s", other, ca_files[i]);
		unlink(from);
	}
	rmdir(other);
}

/* A crash between writing the key and the certificate on first start leaves only the key; the
 * next start finishes the CA with that key. */
static void test_key_without_certificate_is_completed(void **state)
{
	struct fx *f = *state;
	mbedtls_x509_crt a, b;
	char p[PATH_MAX], *before;
	const char *after;
	size_t len, after_len;

	before = strdup(ca_cert_pem(f->ca, &len));
	file_path(f, CA_CERT_FILE, p);
	assert_int_equal(unlink(p), 0);
	reopen(f, "box1", f->now);
	parse_crt(&a, before, len);
	after = ca_cert_pem(f->ca, &after_len);
	parse_crt(&b, after, after_len);
	/* Same key, same name: the CA is the same one in all that matters to a verifier. */
	assert_int_equal(a.pk_raw.len, b.pk_raw.len);
	assert_memory_equal(a.pk_raw.p, b.pk_raw.p, a.pk_raw.len);
	assert_int_equal(a.subject_raw.len, b.subject_raw.len);
	assert_memory_equal(a.subject_raw.p, b.subject_raw.p, a.subject_raw.len);
	mbedtls_x509_crt_free(&a);
	mbedtls_x509_crt_free(&b);
	free(before);
}

static void test_bad_box_name_is_refused(void **state)
{
	struct ca *ca = NULL;

	assert_int_equal(ca_open(&ca, "/tmp/hf-ca-never", "box,O=x", time(NULL)), -EINVAL);
	assert_null(ca);
	assert_int_equal(access("/tmp/hf-ca-never", F_OK), -1);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_first_start_creates_files_with_private_keys_0600),
		T(test_ca_certificate_is_a_self_signed_p256_ca),
		T(test_later_start_loads_the_same_ca),
		T(test_server_chain_is_for_the_box_and_ends_with_the_ca),
		T(test_server_certificate_is_reissued_for_a_new_name_or_near_expiry),
		T(test_signed_certificate_names_the_host_and_is_for_clients_only),
		T(test_serials_increase_and_survive_a_restart),
		T(test_request_with_a_bad_signature_is_refused),
		T(test_garbage_request_is_refused),
		T(test_request_with_another_key_type_is_refused),
		T(test_names_that_could_change_the_subject_are_refused),
		T(test_certificate_without_its_key_is_refused),
		T(test_key_of_another_ca_is_refused),
		T(test_key_without_certificate_is_completed),
		cmocka_unit_test(test_bad_box_name_is_refused),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
