/* Tests for lib/tls.c: real TLS 1.2 handshakes over a socketpair between a server and a client
 * whose certificates come from test CAs made with csv-coord/ca.c. Mutual authentication
 * succeeds and carries data; a client without a certificate, with one from another CA, with
 * an expired one, and servers that fail the client's checks are each refused with their own
 * errno. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "csv-coord/ca.h"
#include "lib/tls.h"

struct pair {
	char *cert;
	size_t cert_len;
	char *key;
	size_t key_len;
};

struct pki {
	char dir[2][64];
	struct ca *ca;	     /* the cluster's CA, box name "box1" */
	struct ca *other;    /* another box's CA */
	struct pair host;    /* host1, signed by ca */
	struct pair foreign; /* host1, signed by other */
	struct pair expired; /* host1, signed by ca, expired nine days ago */
};

static struct pki pki;

static void issue_host(struct ca *ca, const char *name, time_t now, unsigned days, struct pair *out)
{
	char *csr;
	size_t csr_len;
	uint64_t serial;

	assert_int_equal(ca_make_csr(name, &out->key, &out->key_len, &csr, &csr_len), 0);
	assert_int_equal(
		ca_sign_csr(ca, csr, csr_len, name, now, days, &out->cert, &out->cert_len, &serial),
		0);
	free(csr);
}

static void rm_dir(const char *dir)
{
	static const char *const files[] = {CA_KEY_FILE, CA_CERT_FILE, CA_SERIAL_FILE,
					    CA_SERVER_KEY_FILE, CA_SERVER_CRT_FILE};
	char p[PATH_MAX];
	size_t i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
		unlink(p);
	}
	rmdir(dir);
}

static int group_setup(void **state)
{
	time_t now = time(NULL);
	int i;

	for (i = 0; i < 2; i++) {
		strcpy(pki.dir[i], "/tmp/hf-tls-test-XXXXXX");
		if (!mkdtemp(pki.dir[i]))
			return -1;
	}
	if (ca_open(&pki.ca, pki.dir[0], "box1", now) ||
	    ca_open(&pki.other, pki.dir[1], "box1", now))
		return -1;
	issue_host(pki.ca, "host1", now, 30, &pki.host);
	issue_host(pki.other, "host1", now, 30, &pki.foreign);
	issue_host(pki.ca, "host1", now - 10 * 86400, 1, &pki.expired);
	return 0;
}

static void free_pair(struct pair *p)
{
	free(p->cert);
	free(p->key);
}

static int group_teardown(void **state)
{
	free_pair(&pki.host);
	free_pair(&pki.foreign);
	free_pair(&pki.expired);
	ca_close(pki.ca);
	ca_close(pki.other);
	rm_dir(pki.dir[0]);
	rm_dir(pki.dir[1]);
	return 0;
}

/* One connection under test: both ends' configs and connections over a socketpair. */
struct link {
	int fd[2];
	struct tls_config *scfg, *ccfg;
	struct tls_conn *srv, *cli;
	int srv_rc, cli_rc;
};

static struct tls_config *server_config(struct ca *ca)
{
	struct tls_config *cfg;
	const char *cert, *key, *ca_pem;
	size_t cert_len, key_len, ca_len;

	assert_int_equal(tls_config_new(&cfg, TLS_ROLE_SERVER), 0);
	ca_pem = ca_cert_pem(ca, &ca_len);
	cert = ca_server_cert_pem(ca, &cert_len);
	key = ca_server_key_pem(ca, &key_len);
	assert_int_equal(tls_config_set_ca_pem(cfg, ca_pem, ca_len), 0);
	assert_int_equal(tls_config_set_own_pem(cfg, cert, cert_len, key, key_len), 0);
	return cfg;
}

/* A client that trusts ca and presents own (or nothing when own is NULL). */
static struct tls_config *client_config(struct ca *ca, const struct pair *own)
{
	struct tls_config *cfg;
	const char *ca_pem;
	size_t ca_len;

	assert_int_equal(tls_config_new(&cfg, TLS_ROLE_CLIENT), 0);
	ca_pem = ca_cert_pem(ca, &ca_len);
	assert_int_equal(tls_config_set_ca_pem(cfg, ca_pem, ca_len), 0);
	if (own)
		assert_int_equal(tls_config_set_own_pem(cfg, own->cert, own->cert_len, own->key,
							own->key_len),
				 0);
	return cfg;
}

static void link_open(struct link *l, struct tls_config *scfg, struct tls_config *ccfg)
{
	memset(l, 0, sizeof(*l));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, l->fd), 0);
	l->scfg = scfg;
	l->ccfg = ccfg;
	assert_int_equal(tls_conn_new(&l->srv, scfg, l->fd[0], "test server side"), 0);
	assert_int_equal(tls_conn_new(&l->cli, ccfg, l->fd[1], "test client side"), 0);
}

/* Step both ends until neither can make progress; each result is then 0 or its refusal. */
static void link_handshake(struct link *l)
{
	int i;

	l->srv_rc = l->cli_rc = -EAGAIN;
	for (i = 0; i < 100 && (l->srv_rc == -EAGAIN || l->cli_rc == -EAGAIN); i++) {
		if (l->cli_rc == -EAGAIN)
			l->cli_rc = tls_conn_handshake(l->cli);
		if (l->srv_rc == -EAGAIN)
			l->srv_rc = tls_conn_handshake(l->srv);
		/* When one end has failed, the other sees the alert or the close. */
		if (l->srv_rc != -EAGAIN && l->srv_rc != 0 && l->cli_rc == -EAGAIN)
			shutdown(l->fd[0], SHUT_RDWR);
		if (l->cli_rc != -EAGAIN && l->cli_rc != 0 && l->srv_rc == -EAGAIN)
			shutdown(l->fd[1], SHUT_RDWR);
	}
}

static void link_close(struct link *l)
{
	tls_conn_free(l->srv);
	tls_conn_free(l->cli);
	tls_config_free(l->scfg);
	tls_config_free(l->ccfg);
	close(l->fd[0]);
	close(l->fd[1]);
}

static void test_mutual_handshake_verifies_both_sides(void **state)
{
	uint8_t fp[TLS_FINGERPRINT_LEN], want[TLS_FINGERPRINT_LEN];
	char cn[TLS_CN_MAX];
	struct link l;

	link_open(&l, server_config(pki.ca), client_config(pki.ca, &pki.host));
	assert_int_equal(tls_conn_set_peer_name(l.cli, "box1"), 0);
	link_handshake(&l);
	assert_int_equal(l.srv_rc, 0);
	assert_int_equal(l.cli_rc, 0);

	/* The server knows the host by the CN the CA put in, and by the certificate's hash. */
	assert_true(tls_conn_has_peer_cert(l.srv));
	assert_int_equal(tls_conn_peer_cn(l.srv, cn, sizeof(cn)), 0);
	assert_string_equal(cn, "host1");
	assert_int_equal(tls_conn_peer_fingerprint(l.srv, fp), 0);
	assert_int_equal(tls_pem_fingerprint(pki.host.cert, pki.host.cert_len, want), 0);
	assert_memory_equal(fp, want, sizeof(fp));

	assert_int_equal(tls_conn_peer_cn(l.cli, cn, sizeof(cn)), 0);
	assert_string_equal(cn, "box1");
	link_close(&l);
}

static void test_application_data_round_trips_both_ways(void **state)
{
	enum { LEN = 100000 }; /* several records, more than one socket buffer's worth */
	unsigned char *out = malloc(LEN), *in = malloc(LEN);
	size_t sent = 0, got = 0;
	struct link l;
	ssize_t n;
	int i;

	for (i = 0; i < LEN; i++)
		out[i] = (unsigned char)(i * 7 + 3);
	link_open(&l, server_config(pki.ca), client_config(pki.ca, &pki.host));
	link_handshake(&l);
	assert_int_equal(l.cli_rc, 0);
	assert_int_equal(l.srv_rc, 0);

	/* Client to server, pumping both ends because the socket buffer fills. */
	for (i = 0; i < 10000 && got < LEN; i++) {
		if (sent < LEN) {
			n = tls_conn_write(l.cli, out + sent, LEN - sent);
			assert_true(n > 0 || n == -EAGAIN);
			if (n == -EAGAIN)
				assert_int_equal(tls_conn_want(l.cli), TLS_WANT_WRITE);
			else
				sent += n;
		}
		n = tls_conn_read(l.srv, in + got, LEN - got);
		assert_true(n > 0 || n == -EAGAIN);
		if (n == -EAGAIN)
			assert_int_equal(tls_conn_want(l.srv), TLS_WANT_READ);
		else
			got += n;
	}
	assert_int_equal(got, LEN);
	assert_memory_equal(in, out, LEN);

	/* Server to client: a short reply. */
	assert_int_equal(tls_conn_write(l.srv, "welcome", 7), 7);
	memset(in, 0, 8);
	assert_int_equal(tls_conn_read(l.cli, in, 8), 7);
	assert_memory_equal(in, "welcome", 7);
	assert_int_equal(tls_conn_pending(l.cli), 0);
	assert_int_equal(tls_conn_read(l.cli, in, 8), -EAGAIN);
	assert_int_equal(tls_conn_want(l.cli), TLS_WANT_READ);
	free(out);
	free(in);
	link_close(&l);
}

static void test_close_notify_reads_as_clean_end(void **state)
{
	char buf[4];
	struct link l;

	link_open(&l, server_config(pki.ca), client_config(pki.ca, &pki.host));
	link_handshake(&l);
	assert_int_equal(l.cli_rc, 0);
	assert_int_equal(tls_conn_close_notify(l.cli), 0);
	assert_int_equal(tls_conn_read(l.srv, buf, sizeof(buf)), 0);
	link_close(&l);
}

static void test_unclean_close_is_not_a_clean_end(void **state)
{
	char buf[4];
	struct link l;

	link_open(&l, server_config(pki.ca), client_config(pki.ca, &pki.host));
	link_handshake(&l);
	assert_int_equal(l.cli_rc, 0);
	shutdown(l.fd[1], SHUT_WR);
	assert_int_equal(tls_conn_read(l.srv, buf, sizeof(buf)), -ECONNRESET);
	link_close(&l);
}

static void test_client_without_certificate_is_refused(void **state)
{
	struct link l;

	link_open(&l, server_config(pki.ca), client_config(pki.ca, NULL));
	link_handshake(&l);
	assert_int_equal(l.srv_rc, -ENOKEY);
	assert_true(l.cli_rc < 0 && l.cli_rc != -EAGAIN);
	/* A refused connection stays refused. */
	assert_int_equal(tls_conn_handshake(l.srv), -ENOKEY);
	assert_int_equal(tls_conn_write(l.srv, "x", 1), -ENOKEY);
	link_close(&l);
}

static void test_client_certificate_from_another_ca_is_refused(void **state)
{
	struct link l;

	link_open(&l, server_config(pki.ca), client_config(pki.ca, &pki.foreign));
	link_handshake(&l);
	assert_int_equal(l.srv_rc, -EKEYREJECTED);
	assert_int_equal(l.cli_rc, -ECONNREFUSED);
	assert_false(tls_conn_has_peer_cert(l.srv));
	link_close(&l);
}

static void test_expired_client_certificate_is_refused(void **state)
{
	struct link l;

	link_open(&l, server_config(pki.ca), client_config(pki.ca, &pki.expired));
	link_handshake(&l);
	assert_int_equal(l.srv_rc, -EKEYEXPIRED);
	assert_int_equal(l.cli_rc, -ECONNREFUSED);
	link_close(&l);
}

static void test_client_refuses_server_of_another_ca(void **state)
{
	struct link l;

	link_open(&l, server_config(pki.other), client_config(pki.ca, &pki.host));
	link_handshake(&l);
	assert_int_equal(l.cli_rc, -EKEYREJECTED);
	assert_true(l.srv_rc < 0 && l.srv_rc != -EAGAIN);
	link_close(&l);
}

static void test_client_refuses_server_with_another_name(void **state)
{
	struct link l;

	link_open(&l, server_config(pki.ca), client_config(pki.ca, &pki.host));
	assert_int_equal(tls_conn_set_peer_name(l.cli, "box2"), 0);
	link_handshake(&l);
	assert_int_equal(l.cli_rc, -EKEYREJECTED);
	link_close(&l);
}

/* A host's certificate is for clients only (extended key usage), so a host that got one
 * cannot pose as the box to the other hosts. mbedTLS already refuses to serve with it (no
 * usable suite for a client-only certificate), and the client would refuse it if it did. */
static void test_host_certificate_cannot_serve(void **state)
{
	struct tls_config *scfg;
	const char *ca_pem;
	size_t ca_len;
	struct link l;

	assert_int_equal(tls_config_new(&scfg, TLS_ROLE_SERVER), 0);
	ca_pem = ca_cert_pem(pki.ca, &ca_len);
	assert_int_equal(tls_config_set_ca_pem(scfg, ca_pem, ca_len), 0);
	assert_int_equal(tls_config_set_own_pem(scfg, pki.host.cert, pki.host.cert_len,
						pki.host.key, pki.host.key_len),
			 0);
	link_open(&l, scfg, client_config(pki.ca, &pki.host));
	link_handshake(&l);
	assert_true(l.cli_rc < 0 && l.cli_rc != -EAGAIN);
	assert_true(l.srv_rc < 0 && l.srv_rc != -EAGAIN);
	assert_false(tls_conn_has_peer_cert(l.cli));
	link_close(&l);
}

/* The join listener: the joining host has no certificate yet and knows the box only by the
 * CA fingerprint printed with its token. */
static struct tls_config *join_server_config(struct ca *ca)
{
	struct tls_config *cfg = server_config(ca);

	assert_int_equal(tls_config_set_client_cert_optional(cfg), 0);
	return cfg;
}

static struct tls_config *pinned_client_config(const uint8_t *pin)
{
	struct tls_config *cfg;

	assert_int_equal(tls_config_new(&cfg, TLS_ROLE_CLIENT), 0);
	assert_int_equal(tls_config_pin_ca(cfg, pin), 0);
	return cfg;
}

static void test_join_listener_accepts_pinned_client_without_certificate(void **state)
{
	char cn[TLS_CN_MAX];
	struct link l;

	link_open(&l, join_server_config(pki.ca), pinned_client_config(ca_fingerprint(pki.ca)));
	assert_int_equal(tls_conn_set_peer_name(l.cli, "box1"), 0);
	link_handshake(&l);
	assert_int_equal(l.srv_rc, 0);
	assert_int_equal(l.cli_rc, 0);
	assert_false(tls_conn_has_peer_cert(l.srv));
	assert_int_equal(tls_conn_peer_cn(l.srv, cn, sizeof(cn)), -ENOKEY);
	assert_int_equal(tls_conn_peer_cn(l.cli, cn, sizeof(cn)), 0);
	assert_string_equal(cn, "box1");
	link_close(&l);
}

static void test_pinned_client_refuses_box_with_another_ca(void **state)
{
	struct link l;

	link_open(&l, join_server_config(pki.other), pinned_client_config(ca_fingerprint(pki.ca)));
	link_handshake(&l);
	assert_int_equal(l.cli_rc, -EKEYREJECTED);
	link_close(&l);
}

static void test_join_listener_still_refuses_a_bad_certificate(void **state)
{
	struct link l;

	link_open(&l, join_server_config(pki.ca), client_config(pki.ca, &pki.foreign));
	link_handshake(&l);
	assert_int_equal(l.srv_rc, -EKEYREJECTED);
	link_close(&l);
}

static void test_config_rejects_key_of_another_certificate(void **state)
{
	struct tls_config *cfg;

	assert_int_equal(tls_config_new(&cfg, TLS_ROLE_CLIENT), 0);
	assert_int_equal(tls_config_set_own_pem(cfg, pki.host.cert, pki.host.cert_len,
						pki.foreign.key, pki.foreign.key_len),
			 -EKEYREJECTED);
	assert_int_equal(tls_config_set_ca_pem(cfg, "garbage", 7), -EBADMSG);
	tls_config_free(cfg);
}

static void test_connection_needs_trust_configured(void **state)
{
	struct tls_config *cfg;
	struct tls_conn *conn;

	assert_int_equal(tls_config_new(&cfg, TLS_ROLE_CLIENT), 0);
	assert_int_equal(tls_conn_new(&conn, cfg, -1, "x"), -EINVAL);
	tls_config_free(cfg);
}

/* holdfastd forks its planes: a child must not repeat its parent's random bytes. */
static void test_random_differs_after_fork(void **state)
{
	unsigned char a[16], b[16];
	int p[2], status;
	pid_t pid;

	assert_int_equal(tls_random(a, sizeof(a)), 0);
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		_exit(tls_random(b, sizeof(b)) || write(p[1], b, sizeof(b)) != sizeof(b));
	}
	assert_int_equal(read(p[0], b, sizeof(b)), sizeof(b));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(tls_random(a, sizeof(a)), 0);
	assert_memory_not_equal(a, b, sizeof(a));
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mutual_handshake_verifies_both_sides),
		cmocka_unit_test(test_application_data_round_trips_both_ways),
		cmocka_unit_test(test_close_notify_reads_as_clean_end),
		cmocka_unit_test(test_unclean_close_is_not_a_clean_end),
		cmocka_unit_test(test_client_without_certificate_is_refused),
		cmocka_unit_test(test_client_certificate_from_another_ca_is_refused),
		cmocka_unit_test(test_expired_client_certificate_is_refused),
		cmocka_unit_test(test_client_refuses_server_of_another_ca),
		cmocka_unit_test(test_client_refuses_server_with_another_name),
		cmocka_unit_test(test_host_certificate_cannot_serve),
		cmocka_unit_test(test_join_listener_accepts_pinned_client_without_certificate),
		cmocka_unit_test(test_pinned_client_refuses_box_with_another_ca),
		cmocka_unit_test(test_join_listener_still_refuses_a_bad_certificate),
		cmocka_unit_test(test_config_rejects_key_of_another_certificate),
		cmocka_unit_test(test_connection_needs_trust_configured),
		cmocka_unit_test(test_random_differs_after_fork),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
