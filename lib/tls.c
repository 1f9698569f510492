#include "lib/tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "lib/log.h"

/* TLS 1.2 only, and only AEAD suites with ECDHE and ECDSA: every certificate Holdfast issues
 * carries a P-256 key, so nothing else is ever needed, and a short list is a small attack
 * surface. */
static const int tls_ciphersuites[] = {
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	0,
};

struct tls_config {
	enum tls_role role;
	mbedtls_ssl_config conf;
	mbedtls_x509_crt ca;
	mbedtls_x509_crt own;
	mbedtls_pk_context key;
	bool have_ca;
	bool have_own;
	bool client_optional;
	bool pinned;
	uint8_t pin[TLS_FINGERPRINT_LEN];
};

struct tls_conn {
	struct tls_config *cfg;
	mbedtls_ssl_context ssl;
	int fd;
	int io_err;	  /* errno of the last failed send/recv, negative */
	int failed;	  /* sticky error once the connection is refused or broken */
	bool established; /* handshake complete and peer accepted */
	enum tls_want want;
	char label[96];
	char peer_name[256];
};

/* The process's random generator. holdfastd forks one process per plane after it may have
 * drawn random bytes, so the generator remembers the pid it was seeded in and reseeds in a
 * child; otherwise two planes would produce the same "random" keys and tokens. */
static struct {
	pthread_mutex_t lock;
	bool seeded;
	pid_t pid;
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
} rng = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int rng_seed_locked(void)
{
	static const char pers[] = "holdfast";
	pid_t pid = getpid();
	int ret;

	if (rng.seeded && rng.pid == pid)
		return 0;
	if (rng.seeded) {
		/* The entropy pool was copied by fork too; mixing in fresh kernel entropy on
		 * reseed is what makes the child's stream its own. */
		ret = mbedtls_ctr_drbg_reseed(&rng.drbg, (const unsigned char *)&pid, sizeof(pid));
	} else {
		mbedtls_entropy_init(&rng.entropy);
		mbedtls_ctr_drbg_init(&rng.drbg);
		ret = mbedtls_ctr_drbg_seed(&rng.drbg, mbedtls_entropy_func, &rng.entropy,
					    (const unsigned char *)pers, sizeof(pers) - 1);
		if (ret) {
			mbedtls_ctr_drbg_free(&rng.drbg);
			mbedtls_entropy_free(&rng.entropy);
		}
	}
	if (ret) {
		log_warnx("%s: seeding the random generator failed (-0x%04x)", __func__, -ret);
		return -EIO;
	}
	rng.seeded = true;
	rng.pid = pid;
	return 0;
}

int tls_random(void *buf, size_t len)
{
	unsigned char *p = buf;
	int err;

	pthread_mutex_lock(&rng.lock);
	err = rng_seed_locked();
	while (!err && len > 0) {
		size_t n = len < MBEDTLS_CTR_DRBG_MAX_REQUEST ? len : MBEDTLS_CTR_DRBG_MAX_REQUEST;

		if (mbedtls_ctr_drbg_random(&rng.drbg, p, n))
			err = -EIO;
		p += n;
		len -= n;
	}
	pthread_mutex_unlock(&rng.lock);
	return err;
}

/* The shape mbedTLS wants for its f_rng arguments. */
static int tls_rng_cb(void *ctx, unsigned char *buf, size_t len)
{
	return tls_random(buf, len) ? MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED : 0;
}

static void mbed_text(int ret, char *buf, size_t len)
{
	mbedtls_strerror(ret, buf, len);
}

/* One line of text for a set of X.509 verification flags. */
static void verify_text(uint32_t flags, char *buf, size_t len)
{
	char *p;

	if (mbedtls_x509_crt_verify_info(buf, len, "", flags) < 0 || !buf[0]) {
		snprintf(buf, len, "verification flags 0x%x", flags);
		return;
	}
	for (p = buf; *p; p++)
		if (*p == '\n')
			*p = p[1] ? ';' : '\0';
}

static int verify_errno(uint32_t flags)
{
	if (flags & MBEDTLS_X509_BADCERT_MISSING)
		return -ENOKEY;
	if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
		return -EKEYREJECTED;
	if (flags & (MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE))
		return -EKEYEXPIRED;
	return -EKEYREJECTED;
}

int tls_config_new(struct tls_config **out, enum tls_role role)
{
	struct tls_config *cfg;
	int ret;

	switch (role) {
	case TLS_ROLE_SERVER:
	case TLS_ROLE_CLIENT:
		break;
	default:
		return -EINVAL;
	}
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return -ENOMEM;
	cfg->role = role;
	mbedtls_ssl_config_init(&cfg->conf);
	mbedtls_x509_crt_init(&cfg->ca);
	mbedtls_x509_crt_init(&cfg->own);
	mbedtls_pk_init(&cfg->key);
	ret = mbedtls_ssl_config_defaults(
		&cfg->conf, role == TLS_ROLE_SERVER ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
		MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
	if (ret) {
		tls_config_free(cfg);
		return -ENOMEM;
	}
	/* TLS 1.2 is the floor; 2.28 has nothing above it, 3.6 will raise the ceiling. */
	mbedtls_ssl_conf_min_version(&cfg->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
				     MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_ciphersuites(&cfg->conf, tls_ciphersuites);
	mbedtls_ssl_conf_rng(&cfg->conf, tls_rng_cb, NULL);
	/* Both sides always present and verify certificates: that is the agent port's rule. */
	mbedtls_ssl_conf_authmode(&cfg->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
	*out = cfg;
	return 0;
}

void tls_config_free(struct tls_config *cfg)
{
	if (!cfg)
		return;
	mbedtls_ssl_config_free(&cfg->conf);
	mbedtls_x509_crt_free(&cfg->ca);
	mbedtls_x509_crt_free(&cfg->own);
	mbedtls_pk_free(&cfg->key);
	free(cfg);
}

/* mbedTLS parses PEM only from a NUL-terminated buffer whose length counts the NUL. */
static char *pem_dup(const char *pem, size_t len)
{
	char *s = malloc(len + 1);

	if (!s)
		return NULL;
	memcpy(s, pem, len);
	s[len] = '\0';
	return s;
}

static int parse_crts(mbedtls_x509_crt *chain, const char *pem, size_t len)
{
	char *s = pem_dup(pem, len);
	int ret;

	if (!s)
		return -ENOMEM;
	ret = mbedtls_x509_crt_parse(chain, (const unsigned char *)s, len + 1);
	free(s);
	/* A positive result counts certificates that failed to parse: none may. */
	return ret ? -EBADMSG : 0;
}

static int use_ca(struct tls_config *cfg)
{
	cfg->have_ca = true;
	mbedtls_ssl_conf_ca_chain(&cfg->conf, &cfg->ca, NULL);
	return 0;
}

int tls_config_set_ca_pem(struct tls_config *cfg, const char *pem, size_t len)
{
	int err;

	if (cfg->have_ca || cfg->pinned)
		return -EEXIST;
	err = parse_crts(&cfg->ca, pem, len);
	if (err) {
		log_warnx("%s: the CA chain does not parse", __func__);
		mbedtls_x509_crt_free(&cfg->ca);
		mbedtls_x509_crt_init(&cfg->ca);
		return err;
	}
	return use_ca(cfg);
}

int tls_config_set_ca_file(struct tls_config *cfg, const char *path)
{
	if (cfg->have_ca || cfg->pinned)
		return -EEXIST;
	if (mbedtls_x509_crt_parse_file(&cfg->ca, path)) {
		log_warnx("%s: %s: not a readable PEM certificate chain", __func__, path);
		mbedtls_x509_crt_free(&cfg->ca);
		mbedtls_x509_crt_init(&cfg->ca);
		return -EBADMSG;
	}
	return use_ca(cfg);
}

static int use_own(struct tls_config *cfg)
{
	if (mbedtls_pk_check_pair(&cfg->own.pk, &cfg->key)) {
		log_warnx("%s: the private key does not belong to the certificate", __func__);
		return -EKEYREJECTED;
	}
	if (mbedtls_ssl_conf_own_cert(&cfg->conf, &cfg->own, &cfg->key))
		return -ENOMEM;
	cfg->have_own = true;
	return 0;
}

static void reset_own(struct tls_config *cfg)
{
	mbedtls_x509_crt_free(&cfg->own);
	mbedtls_x509_crt_init(&cfg->own);
	mbedtls_pk_free(&cfg->key);
	mbedtls_pk_init(&cfg->key);
}

int tls_config_set_own_pem(struct tls_config *cfg, const char *cert_pem, size_t cert_len,
			   const char *key_pem, size_t key_len)
{
	char *key;
	int err, ret;

	if (cfg->have_own)
		return -EEXIST;
	err = parse_crts(&cfg->own, cert_pem, cert_len);
	if (err) {
		log_warnx("%s: our certificate does not parse", __func__);
		goto err_reset;
	}
	key = pem_dup(key_pem, key_len);
	if (!key) {
		err = -ENOMEM;
		goto err_reset;
	}
	ret = mbedtls_pk_parse_key(&cfg->key, (const unsigned char *)key, key_len + 1, NULL, 0);
	mbedtls_platform_zeroize(key, key_len);
	free(key);
	if (ret) {
		log_warnx("%s: our private key does not parse", __func__);
		err = -EBADMSG;
		goto err_reset;
	}
	err = use_own(cfg);
	if (err)
		goto err_reset;
	return 0;

err_reset:
	reset_own(cfg);
	return err;
}

int tls_config_set_own_files(struct tls_config *cfg, const char *cert_path, const char *key_path)
{
	int err;

	if (cfg->have_own)
		return -EEXIST;
	if (mbedtls_x509_crt_parse_file(&cfg->own, cert_path)) {
		log_warnx("%s: %s: not a readable PEM certificate", __func__, cert_path);
		err = -EBADMSG;
		goto err_reset;
	}
	if (mbedtls_pk_parse_keyfile(&cfg->key, key_path, NULL)) {
		log_warnx("%s: %s: not a readable private key", __func__, key_path);
		err = -EBADMSG;
		goto err_reset;
	}
	err = use_own(cfg);
	if (err)
		goto err_reset;
	return 0;

err_reset:
	reset_own(cfg);
	return err;
}

int tls_config_set_client_cert_optional(struct tls_config *cfg)
{
	if (cfg->role != TLS_ROLE_SERVER)
		return -EINVAL;
	/* OPTIONAL makes mbedTLS finish the handshake whatever the verification found; the
	 * wrapper then refuses a presented certificate that failed, in check_peer(). */
	cfg->client_optional = true;
	mbedtls_ssl_conf_authmode(&cfg->conf, MBEDTLS_SSL_VERIFY_OPTIONAL);
	return 0;
}

int tls_config_pin_ca(struct tls_config *cfg, const uint8_t pin[TLS_FINGERPRINT_LEN])
{
	if (cfg->role != TLS_ROLE_CLIENT)
		return -EINVAL;
	if (cfg->have_ca)
		return -EEXIST;
	memcpy(cfg->pin, pin, TLS_FINGERPRINT_LEN);
	cfg->pinned = true;
	/* With no CA chain, verification can only fail as "not trusted"; check_peer() then
	 * verifies the server against the pinned CA found in its own chain. */
	mbedtls_ssl_conf_authmode(&cfg->conf, MBEDTLS_SSL_VERIFY_OPTIONAL);
	return 0;
}

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
	struct tls_conn *conn = ctx;
	ssize_t n;

	do
		n = send(conn->fd, buf, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n >= 0)
		return (int)n;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return MBEDTLS_ERR_SSL_WANT_WRITE;
	conn->io_err = -errno;
	return MBEDTLS_ERR_NET_SEND_FAILED;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
	struct tls_conn *conn = ctx;
	ssize_t n;

	do
		n = recv(conn->fd, buf, len, 0);
	while (n < 0 && errno == EINTR);
	if (n >= 0)
		return (int)n;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return MBEDTLS_ERR_SSL_WANT_READ;
	conn->io_err = -errno;
	return MBEDTLS_ERR_NET_RECV_FAILED;
}

int tls_conn_new(struct tls_conn **out, struct tls_config *cfg, int fd, const char *label)
{
	struct tls_conn *conn;

	/* A config without trust could accept anyone; one without our certificate could not
	 * do mutual authentication (a joining client is the one exception: it has none yet). */
	if (!cfg->have_ca && !cfg->pinned)
		return -EINVAL;
	if (!cfg->have_own && cfg->role == TLS_ROLE_SERVER)
		return -EINVAL;
	conn = calloc(1, sizeof(*conn));
	if (!conn)
		return -ENOMEM;
	conn->cfg = cfg;
	conn->fd = fd;
	snprintf(conn->label, sizeof(conn->label), "%s", label ? label : "peer");
	mbedtls_ssl_init(&conn->ssl);
	if (mbedtls_ssl_setup(&conn->ssl, &cfg->conf)) {
		mbedtls_ssl_free(&conn->ssl);
		free(conn);
		return -ENOMEM;
	}
	mbedtls_ssl_set_bio(&conn->ssl, conn, bio_send, bio_recv, NULL);
	*out = conn;
	return 0;
}

void tls_conn_free(struct tls_conn *conn)
{
	if (!conn)
		return;
	mbedtls_ssl_free(&conn->ssl);
	free(conn);
}

int tls_conn_set_peer_name(struct tls_conn *conn, const char *name)
{
	if (conn->cfg->role != TLS_ROLE_CLIENT)
		return -EINVAL;
	if (snprintf(conn->peer_name, sizeof(conn->peer_name), "%s", name) >=
	    (int)sizeof(conn->peer_name))
		return -ENAMETOOLONG;
	return mbedtls_ssl_set_hostname(&conn->ssl, name) ? -ENOMEM : 0;
}

/* Map an mbedTLS result of handshake, read or write to the wrapper's convention. */
static int map_err(struct tls_conn *conn, int ret, const char *what)
{
	char text[160];
	uint32_t flags;
	int err;

	switch (ret) {
	case MBEDTLS_ERR_SSL_WANT_READ:
		conn->want = TLS_WANT_READ;
		return -EAGAIN;
	case MBEDTLS_ERR_SSL_WANT_WRITE:
		conn->want = TLS_WANT_WRITE;
		return -EAGAIN;
	case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED:
		flags = mbedtls_ssl_get_verify_result(&conn->ssl);
		verify_text(flags, text, sizeof(text));
		err = verify_errno(flags);
		log_warnx("%s: %s: %s refused: peer certificate: %s", __func__, conn->label, what,
			  text);
		break;
	case MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE:
		err = -ENOKEY;
		log_warnx("%s: %s: %s refused: the client presented no certificate", __func__,
			  conn->label, what);
		break;
	case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE:
		err = -ECONNREFUSED;
		log_warnx("%s: %s: %s refused by the peer (fatal alert; it did not accept our "
			  "certificate or parameters)",
			  __func__, conn->label, what);
		break;
	case MBEDTLS_ERR_SSL_CONN_EOF:
	case MBEDTLS_ERR_NET_CONN_RESET:
		err = -ECONNRESET;
		log_info("%s: %s: %s: the peer closed the connection", __func__, conn->label, what);
		break;
	case MBEDTLS_ERR_NET_SEND_FAILED:
	case MBEDTLS_ERR_NET_RECV_FAILED:
		err = conn->io_err ? conn->io_err : -EIO;
		log_info("%s: %s: %s: %s", __func__, conn->label, what, strerror(-err));
		break;
	default:
		mbed_text(ret, text, sizeof(text));
		err = -EPROTO;
		log_warnx("%s: %s: %s failed: %s (-0x%04x)", __func__, conn->label, what, text,
			  -ret);
		break;
	}
	conn->want = TLS_WANT_NONE;
	conn->failed = err;
	return err;
}

/* Refuse a peer after mbedTLS finished the handshake: tell it with a fatal alert (best
 * effort, the socket is non-blocking) and make the refusal sticky. */
static int refuse(struct tls_conn *conn, int err, unsigned char alert, const char *why)
{
	log_warnx("%s: %s: handshake refused: %s", __func__, conn->label, why);
	mbedtls_ssl_send_alert_message(&conn->ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL, alert);
	conn->failed = err;
	return err;
}

static int sha256(const unsigned char *p, size_t len, uint8_t out[TLS_FINGERPRINT_LEN])
{
	return mbedtls_sha256_ret(p, len, out, 0) ? -EIO : 0;
}

/* The pinned CA's check: find it in the chain the server sent, then verify the server's
 * certificate against it alone, as if it were our configured CA. */
static int check_pinned(struct tls_conn *conn, const mbedtls_x509_crt *leaf)
{
	const uint32_t usage = MBEDTLS_X509_BADCERT_KEY_USAGE | MBEDTLS_X509_BADCERT_EXT_KEY_USAGE |
			       MBEDTLS_X509_BADCERT_NS_CERT_TYPE;
	uint32_t flags = mbedtls_ssl_get_verify_result(&conn->ssl) & usage;
	const mbedtls_x509_crt *c;
	uint8_t fp[TLS_FINGERPRINT_LEN];
	mbedtls_x509_crt anchor;
	char text[160];
	int err;

	for (c = leaf; c; c = c->next) {
		if (sha256(c->raw.p, c->raw.len, fp))
			return refuse(conn, -EIO, MBEDTLS_SSL_ALERT_MSG_INTERNAL_ERROR, "hash");
		if (!memcmp(fp, conn->cfg->pin, sizeof(fp)))
			break;
	}
	if (!c)
		return refuse(conn, -EKEYREJECTED, MBEDTLS_SSL_ALERT_MSG_UNKNOWN_CA,
			      "the server's chain does not contain the pinned CA");
	mbedtls_x509_crt_init(&anchor);
	if (mbedtls_x509_crt_parse_der(&anchor, c->raw.p, c->raw.len)) {
		mbedtls_x509_crt_free(&anchor);
		return refuse(conn, -EKEYREJECTED, MBEDTLS_SSL_ALERT_MSG_BAD_CERT,
			      "the pinned CA certificate does not parse");
	}
	if (mbedtls_x509_crt_verify((mbedtls_x509_crt *)leaf, &anchor, NULL,
				    conn->peer_name[0] ? conn->peer_name : NULL, &flags, NULL,
				    NULL))
		flags |= MBEDTLS_X509_BADCERT_OTHER;
	mbedtls_x509_crt_free(&anchor);
	if (flags) {
		verify_text(flags, text, sizeof(text));
		err = verify_errno(flags);
		return refuse(conn, err,
			      err == -EKEYEXPIRED ? MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED
						  : MBEDTLS_SSL_ALERT_MSG_BAD_CERT,
			      text);
	}
	return 0;
}

/* Checks that mbedTLS leaves to us in the OPTIONAL modes. */
static int check_peer(struct tls_conn *conn)
{
	const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&conn->ssl);
	uint32_t flags = mbedtls_ssl_get_verify_result(&conn->ssl);
	char text[160];
	int err;

	if (conn->cfg->pinned) {
		if (!peer)
			return refuse(conn, -ENOKEY, MBEDTLS_SSL_ALERT_MSG_NO_CERT,
				      "the server presented no certificate");
		return check_pinned(conn, peer);
	}
	if (conn->cfg->client_optional) {
		/* No certificate is allowed here; a bad one is not. */
		if (!peer)
			return 0;
		if (flags) {
			verify_text(flags, text, sizeof(text));
			err = verify_errno(flags);
			return refuse(conn, err,
				      err == -EKEYEXPIRED ? MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED
							  : MBEDTLS_SSL_ALERT_MSG_BAD_CERT,
				      text);
		}
	}
	return 0;
}

int tls_conn_handshake(struct tls_conn *conn)
{
	int ret;

	if (conn->failed)
		return conn->failed;
	if (conn->established)
		return 0;
	ret = mbedtls_ssl_handshake(&conn->ssl);
	if (ret)
		return map_err(conn, ret, "handshake");
	conn->want = TLS_WANT_NONE;
	ret = check_peer(conn);
	if (ret)
		return ret;
	conn->established = true;
	return 0;
}

ssize_t tls_conn_read(struct tls_conn *conn, void *buf, size_t len)
{
	int ret;

	if (conn->failed)
		return conn->failed;
	if (!conn->established)
		return -ENOTCONN;
	ret = mbedtls_ssl_read(&conn->ssl, buf, len);
	if (ret > 0)
		return ret;
	if (ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
		return 0;
	/* 0 from mbedtls_ssl_read is the transport closing without close_notify: the data may
	 * have been cut short, so it is not a clean end. */
	if (ret == 0)
		ret = MBEDTLS_ERR_SSL_CONN_EOF;
	return map_err(conn, ret, "read");
}

ssize_t tls_conn_write(struct tls_conn *conn, const void *buf, size_t len)
{
	int ret;

	if (conn->failed)
		return conn->failed;
	if (!conn->established)
		return -ENOTCONN;
	if (len == 0)
		return 0;
	ret = mbedtls_ssl_write(&conn->ssl, buf, len);
	if (ret > 0)
		return ret;
	return map_err(conn, ret, "write");
}

enum tls_want tls_conn_want(const struct tls_conn *conn)
{
	return conn->want;
}

size_t tls_conn_pending(const struct tls_conn *conn)
{
	return mbedtls_ssl_get_bytes_avail(&conn->ssl);
}

int tls_conn_close_notify(struct tls_conn *conn)
{
	int ret;

	if (conn->failed)
		return conn->failed;
	ret = mbedtls_ssl_close_notify(&conn->ssl);
	return ret ? map_err(conn, ret, "close_notify") : 0;
}

bool tls_conn_has_peer_cert(const struct tls_conn *conn)
{
	return conn->established && mbedtls_ssl_get_peer_cert(&conn->ssl) != NULL;
}

static int peer_cert(const struct tls_conn *conn, const mbedtls_x509_crt **out)
{
	if (!conn->established)
		return -ENOTCONN;
	*out = mbedtls_ssl_get_peer_cert(&conn->ssl);
	return *out ? 0 : -ENOKEY;
}

int tls_conn_peer_cn(const struct tls_conn *conn, char *buf, size_t len)
{
	const mbedtls_x509_name *n;
	const mbedtls_x509_crt *crt;
	size_t i;
	int err;

	err = peer_cert(conn, &crt);
	if (err)
		return err;
	for (n = &crt->subject; n; n = n->next)
		if (!MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid))
			break;
	if (!n)
		return -ENOENT;
	if (n->val.len >= len || n->val.len >= TLS_CN_MAX)
		return -ENAMETOOLONG;
	/* The CN names a host in logs and in the API: only printable ASCII passes, so a
	 * certificate cannot smuggle control characters or a NUL into either. */
	for (i = 0; i < n->val.len; i++)
		if (n->val.p[i] < 0x21 || n->val.p[i] > 0x7e)
			return -EBADMSG;
	memcpy(buf, n->val.p, n->val.len);
	buf[n->val.len] = '\0';
	return 0;
}

int tls_conn_peer_fingerprint(const struct tls_conn *conn, uint8_t out[TLS_FINGERPRINT_LEN])
{
	const mbedtls_x509_crt *crt;
	int err;

	err = peer_cert(conn, &crt);
	if (err)
		return err;
	return sha256(crt->raw.p, crt->raw.len, out);
}

int tls_sha256(const void *data, size_t len, uint8_t out[TLS_FINGERPRINT_LEN])
{
	return sha256(data, len, out);
}

int tls_pem_fingerprint(const char *pem, size_t len, uint8_t out[TLS_FINGERPRINT_LEN])
{
	mbedtls_x509_crt crt;
	int err;

	mbedtls_x509_crt_init(&crt);
	err = parse_crts(&crt, pem, len);
	if (!err)
		err = sha256(crt.raw.p, crt.raw.len, out);
	mbedtls_x509_crt_free(&crt);
	return err;
}

void tls_fingerprint_hex(const uint8_t fp[TLS_FINGERPRINT_LEN], char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < TLS_FINGERPRINT_LEN; i++) {
		out[2 * i] = hex[fp[i] >> 4];
		out[2 * i + 1] = hex[fp[i] & 15];
	}
	out[2 * TLS_FINGERPRINT_LEN] = '\0';
}
