#include "csv-coord/ca.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/md.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/x509_crt.h>
#include <mbedtls/x509_csr.h>

#include "lib/atomic_file.h"
#include "lib/log.h"

#define PEM_MAX	 4096	     /* one P-256 certificate or key in PEM is well under 2 KiB */
#define FILE_MAX (64 * 1024) /* anything larger in the CA folder is not ours */

/* RFC 5280 4.2.1.12: ExtKeyUsageSyntax, a SEQUENCE holding one KeyPurposeId. A host's
 * certificate can only authenticate a client and the box's only a server, so a host cannot
 * pose as the box to another host. */
static const unsigned char eku_client[] = {0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06,
					   0x01, 0x05, 0x05, 0x07, 0x03, 0x02};
static const unsigned char eku_server[] = {0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06,
					   0x01, 0x05, 0x05, 0x07, 0x03, 0x01};

struct ca {
	char dir[PATH_MAX - 32];
	char subject[96]; /* the CA's distinguished name, as a string mbedTLS parses */
	mbedtls_pk_context key;
	mbedtls_x509_crt crt;
	char *crt_pem;
	size_t crt_len;
	char *srv_pem;
	size_t srv_len;
	char *srv_key_pem;
	size_t srv_key_len;
	uint8_t fp[TLS_FINGERPRINT_LEN];
	uint64_t serial;
};

static int rng_cb(void *ctx, unsigned char *buf, size_t len)
{
	return tls_random(buf, len) ? MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED : 0;
}

bool ca_name_valid(const char *name)
{
	size_t i;

	if (!name || !name[0])
		return false;
	if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z') ||
	      (name[0] >= '0' && name[0] <= '9')))
		return false;
	for (i = 0; name[i]; i++) {
		char c = name[i];

		if (i >= CA_NAME_MAX)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.'))
			return false;
	}
	return true;
}

static int path_of(const struct ca *ca, const char *file, char *out, size_t len)
{
	return snprintf(out, len, "%s/%s", ca->dir, file) >= (int)len ? -ENAMETOOLONG : 0;
}

/* Read a whole small file into a NUL-terminated buffer. -ENOENT when it does not exist. */
static int read_small(const char *path, char **out, size_t *len)
{
	struct stat st;
	char *buf;
	ssize_t n;
	size_t got = 0;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		goto err_close;
	}
	if (st.st_size > FILE_MAX) {
		err = -EFBIG;
		goto err_close;
	}
	buf = malloc(st.st_size + 1);
	if (!buf) {
		err = -ENOMEM;
		goto err_close;
	}
	while (got < (size_t)st.st_size) {
		n = read(fd, buf + got, st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? -errno : -EIO;
			goto err_free;
		}
		got += n;
	}
	buf[got] = '\0';
	close(fd);
	*out = buf;
	*len = got;
	return 0;

err_free:
	free(buf);
err_close:
	close(fd);
	return err;
}

static void free_secret(char *p, size_t len)
{
	if (!p)
		return;
	mbedtls_platform_zeroize(p, len);
	free(p);
}

static int gen_key(mbedtls_pk_context *key)
{
	if (mbedtls_pk_setup(key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)))
		return -ENOMEM;
	if (mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*key), rng_cb, NULL))
		return -EIO;
	return 0;
}

static int key_to_pem(mbedtls_pk_context *key, char **out, size_t *len)
{
	char *buf = malloc(PEM_MAX);

	if (!buf)
		return -ENOMEM;
	if (mbedtls_pk_write_key_pem(key, (unsigned char *)buf, PEM_MAX)) {
		free_secret(buf, PEM_MAX);
		return -EIO;
	}
	*out = buf;
	*len = strlen(buf);
	return 0;
}

static int parse_key(mbedtls_pk_context *key, const char *pem, size_t len)
{
	return mbedtls_pk_parse_key(key, (const unsigned char *)pem, len + 1, NULL, 0) ? -EBADMSG
										       : 0;
}

static bool is_p256(const mbedtls_pk_context *key)
{
	return mbedtls_pk_get_type(key) == MBEDTLS_PK_ECKEY &&
	       mbedtls_pk_ec(*key)->grp.id == MBEDTLS_ECP_DP_SECP256R1;
}

/* X.509 validity in the form mbedTLS's writer takes: YYYYMMDDhhmmss, UTC. */
static int x509_time(time_t t, char out[15])
{
	struct tm tm;

	/* X.509 times are four-digit years; RFC 5280 4.1.2.5 has none before 1950. */
	if (!gmtime_r(&t, &tm) || tm.tm_year < 50 || tm.tm_year > 9999 - 1900)
		return -EOVERFLOW;
	return strftime(out, 15, "%Y%m%d%H%M%S", &tm) == 14 ? 0 : -EOVERFLOW;
}

static time_t x509_time_to_unix(const mbedtls_x509_time *t)
{
	struct tm tm = {
		.tm_year = t->year - 1900,
		.tm_mon = t->mon - 1,
		.tm_mday = t->day,
		.tm_hour = t->hour,
		.tm_min = t->min,
		.tm_sec = t->sec,
	};

	return timegm(&tm);
}

struct issue {
	mbedtls_pk_context *subject_key;
	const char *subject;
	bool is_ca;
	const unsigned char *eku; /* NULL for the CA */
	size_t eku_len;
	uint64_t serial;
	time_t now;
	unsigned days;
};

/* Write and sign one certificate with the CA's key. The CA certificate itself is issued here
 * too: its subject key is the CA key and its subject is the issuer name. */
static int issue(struct ca *ca, const struct issue *in, char **pem, size_t *len)
{
	/* Hosts and the box disagree on the time by a little; an hour of backdating keeps a
	 * fresh certificate from being "not yet valid" on a host whose clock is behind. */
	time_t from = in->now - 3600, to = in->now + (time_t)in->days * 86400;
	unsigned char be[8];
	char nb[15], na[15], *buf = NULL;
	mbedtls_x509write_cert w;
	mbedtls_mpi serial;
	int err = -EIO, i;

	for (i = 0; i < 8; i++)
		be[i] = in->serial >> (56 - 8 * i);
	if (x509_time(from, nb) || x509_time(to, na))
		return -EOVERFLOW;
	mbedtls_x509write_crt_init(&w);
	mbedtls_mpi_init(&serial);
	if (mbedtls_mpi_read_binary(&serial, be, sizeof(be)))
		goto out;
	mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
	mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
	mbedtls_x509write_crt_set_subject_key(&w, in->subject_key);
	mbedtls_x509write_crt_set_issuer_key(&w, &ca->key);
	if (mbedtls_x509write_crt_set_serial(&w, &serial) ||
	    mbedtls_x509write_crt_set_validity(&w, nb, na) ||
	    mbedtls_x509write_crt_set_issuer_name(&w, ca->subject) ||
	    mbedtls_x509write_crt_set_subject_name(&w, in->subject))
		goto out;
	/* RFC 5280 4.2.1.9: a CA may sign only end-entity certificates (path length 0). */
	if (mbedtls_x509write_crt_set_basic_constraints(&w, in->is_ca, in->is_ca ? 0 : -1))
		goto out;
	/* RFC 5280 4.2.1.3: the CA signs certificates; the others sign handshakes (ECDHE). */
	if (mbedtls_x509write_crt_set_key_usage(&w, in->is_ca ? MBEDTLS_X509_KU_KEY_CERT_SIGN
							      : MBEDTLS_X509_KU_DIGITAL_SIGNATURE))
		goto out;
	if (in->eku &&
	    mbedtls_x509write_crt_set_extension(&w, MBEDTLS_OID_EXTENDED_KEY_USAGE,
						MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE), 0,
						in->eku, in->eku_len))
		goto out;
	if (mbedtls_x509write_crt_set_subject_key_identifier(&w) ||
	    mbedtls_x509write_crt_set_authority_key_identifier(&w))
		goto out;
	buf = malloc(PEM_MAX);
	if (!buf) {
		err = -ENOMEM;
		goto out;
	}
	if (mbedtls_x509write_crt_pem(&w, (unsigned char *)buf, PEM_MAX, rng_cb, NULL)) {
		free(buf);
		goto out;
	}
	*pem = buf;
	*len = strlen(buf);
	err = 0;
out:
	mbedtls_mpi_free(&serial);
	mbedtls_x509write_crt_free(&w);
	return err;
}

/* Take the next serial number and make it durable before anything carries it: a serial is
 * never issued twice, even across a crash. */
static int next_serial(struct ca *ca, uint64_t *out)
{
	char path[PATH_MAX], text[32];
	int n, err;

	err = path_of(ca, CA_SERIAL_FILE, path, sizeof(path));
	if (err)
		return err;
	n = snprintf(text, sizeof(text), "%" PRIu64 "\n", ca->serial + 1);
	err = atomic_file_write(path, text, n, 0600);
	if (err) {
		log_warnx("%s: %s: %s", __func__, path, strerror(-err));
		return err;
	}
	*out = ++ca->serial;
	return 0;
}

static int load_serial(struct ca *ca)
{
	char path[PATH_MAX], *text, *end;
	unsigned long long v;
	size_t len;
	int err;

	err = path_of(ca, CA_SERIAL_FILE, path, sizeof(path));
	if (err)
		return err;
	err = read_small(path, &text, &len);
	if (err == -ENOENT) {
		ca->serial = 0;
		return 0;
	}
	if (err)
		return err;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno || end == text || (*end && *end != '\n')) {
		log_warnx("%s: %s: not a serial number", __func__, path);
		err = -EBADMSG;
	} else {
		ca->serial = v;
	}
	free(text);
	return err;
}

/* The CA's name carries a short hash of its public key, so two boxes' CAs have different
 * names and an admin can tell them apart, and the name can be recomputed from the key alone. */
static int make_subject(struct ca *ca)
{
	unsigned char der[200], *p;
	uint8_t h[32];
	int n;

	n = mbedtls_pk_write_pubkey_der(&ca->key, der, sizeof(der));
	if (n < 0)
		return -EIO;
	p = der + sizeof(der) - n; /* the writer fills from the end */
	if (tls_sha256(p, n, h))
		return -EIO;
	snprintf(ca->subject, sizeof(ca->subject),
		 "CN=Holdfast cluster CA %02x%02x%02x%02x,O=Holdfast", h[0], h[1], h[2], h[3]);
	return 0;
}

static int write_file(struct ca *ca, const char *file, const char *data, size_t len, mode_t mode)
{
	char path[PATH_MAX];
	int err;

	err = path_of(ca, file, path, sizeof(path));
	if (!err)
		err = atomic_file_write(path, data, len, mode);
	if (err)
		log_warnx("%s: %s/%s: %s", __func__, ca->dir, file, strerror(-err));
	return err;
}

static int parse_ca_crt(struct ca *ca)
{
	if (mbedtls_x509_crt_parse(&ca->crt, (const unsigned char *)ca->crt_pem, ca->crt_len + 1)) {
		log_warnx("%s: %s/%s does not parse", __func__, ca->dir, CA_CERT_FILE);
		return -EBADMSG;
	}
	if (!ca->crt.ca_istrue || mbedtls_pk_check_pair(&ca->crt.pk, &ca->key)) {
		log_warnx("%s: %s/%s is not a CA certificate for %s", __func__, ca->dir,
			  CA_CERT_FILE, CA_KEY_FILE);
		return -EKEYREJECTED;
	}
	return tls_pem_fingerprint(ca->crt_pem, ca->crt_len, ca->fp);
}

/* First start: make the key (unless a crash left one without its certificate), write it, then
 * self-sign and write the certificate. The key is written first, so a crash in between leaves
 * a state the next start completes instead of a certificate nobody can sign with. */
static int load_or_create_ca(struct ca *ca, time_t now)
{
	char path[PATH_MAX], *key_pem = NULL;
	size_t key_len = 0;
	struct issue in;
	uint64_t serial;
	int err;

	err = path_of(ca, CA_KEY_FILE, path, sizeof(path));
	if (err)
		return err;
	err = read_small(path, &key_pem, &key_len);
	if (err == -ENOENT) {
		err = path_of(ca, CA_CERT_FILE, path, sizeof(path));
		if (err)
			return err;
		if (access(path, F_OK) == 0) {
			log_warnx("%s: %s exists but %s/%s does not: refusing to replace the "
				  "cluster CA",
				  __func__, path, ca->dir, CA_KEY_FILE);
			return -ENOKEY;
		}
		err = gen_key(&ca->key);
		if (!err)
			err = key_to_pem(&ca->key, &key_pem, &key_len);
		if (!err)
			err = write_file(ca, CA_KEY_FILE, key_pem, key_len, 0600);
		free_secret(key_pem, key_len);
		if (err)
			return err;
		log_info("%s: created the cluster CA key in %s", __func__, ca->dir);
	} else if (err) {
		log_warnx("%s: %s: %s", __func__, path, strerror(-err));
		return err;
	} else {
		err = parse_key(&ca->key, key_pem, key_len);
		free_secret(key_pem, key_len);
		if (err || !is_p256(&ca->key)) {
			log_warnx("%s: %s is not an EC P-256 private key", __func__, path);
			return err ? err : -EKEYREJECTED;
		}
	}
	err = make_subject(ca);
	if (err)
		return err;
	err = load_serial(ca);
	if (err)
		return err;

	err = path_of(ca, CA_CERT_FILE, path, sizeof(path));
	if (err)
		return err;
	err = read_small(path, &ca->crt_pem, &ca->crt_len);
	if (err == -ENOENT) {
		err = next_serial(ca, &serial);
		if (err)
			return err;
		in = (struct issue){.subject_key = &ca->key,
				    .subject = ca->subject,
				    .is_ca = true,
				    .serial = serial,
				    .now = now,
				    .days = CA_CA_DAYS};
		err = issue(ca, &in, &ca->crt_pem, &ca->crt_len);
		if (!err)
			err = write_file(ca, CA_CERT_FILE, ca->crt_pem, ca->crt_len, 0644);
		if (err)
			return err;
		log_info("%s: created the cluster CA \"%s\" in %s", __func__, ca->subject, ca->dir);
	} else if (err) {
		log_warnx("%s: %s: %s", __func__, path, strerror(-err));
		return err;
	}
	return parse_ca_crt(ca);
}

/* Is the stored server certificate one we can keep using: for this box name, signed by this
 * CA, and far enough from expiry at now? */
static bool server_cert_good(struct ca *ca, const char *box_name, time_t now)
{
	char path[PATH_MAX], cn[CA_NAME_MAX + 1];
	mbedtls_x509_crt crt;
	mbedtls_pk_context key;
	const mbedtls_x509_name *n;
	uint32_t flags = 0;
	bool good = false;

	mbedtls_x509_crt_init(&crt);
	mbedtls_pk_init(&key);
	if (path_of(ca, CA_SERVER_KEY_FILE, path, sizeof(path)) ||
	    read_small(path, &ca->srv_key_pem, &ca->srv_key_len))
		goto out;
	if (path_of(ca, CA_SERVER_CRT_FILE, path, sizeof(path)) ||
	    read_small(path, &ca->srv_pem, &ca->srv_len))
		goto out;
	if (parse_key(&key, ca->srv_key_pem, ca->srv_key_len) ||
	    mbedtls_x509_crt_parse(&crt, (const unsigned char *)ca->srv_pem, ca->srv_len + 1) ||
	    mbedtls_pk_check_pair(&crt.pk, &key))
		goto out;
	for (n = &crt.subject; n; n = n->next)
		if (!MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid))
			break;
	if (!n || n->val.len > CA_NAME_MAX)
		goto out;
	memcpy(cn, n->val.p, n->val.len);
	cn[n->val.len] = '\0';
	if (strcmp(cn, box_name))
		goto out;
	/* The signature is checked here; the dates against now below, since the time is ours
	 * to give, not the library's clock. */
	mbedtls_x509_crt_verify(&crt, &ca->crt, NULL, NULL, &flags, NULL, NULL);
	if (flags & ~(MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE))
		goto out;
	if (x509_time_to_unix(&crt.valid_to) - now < (time_t)CA_SERVER_RENEW_DAYS * 86400)
		goto out;
	good = true;
out:
	mbedtls_pk_free(&key);
	mbedtls_x509_crt_free(&crt);
	return good;
}

static int issue_server_cert(struct ca *ca, const char *box_name, time_t now)
{
	char subject[128], *cert = NULL;
	mbedtls_pk_context key;
	struct issue in;
	size_t cert_len = 0;
	uint64_t serial;
	int err;

	free_secret(ca->srv_key_pem, ca->srv_key_len);
	free(ca->srv_pem);
	ca->srv_key_pem = ca->srv_pem = NULL;
	mbedtls_pk_init(&key);
	err = gen_key(&key);
	if (err)
		goto out;
	err = key_to_pem(&key, &ca->srv_key_pem, &ca->srv_key_len);
	if (err)
		goto out;
	err = next_serial(ca, &serial);
	if (err)
		goto out;
	snprintf(subject, sizeof(subject), "CN=%s,O=Holdfast", box_name);
	in = (struct issue){.subject_key = &key,
			    .subject = subject,
			    .eku = eku_server,
			    .eku_len = sizeof(eku_server),
			    .serial = serial,
			    .now = now,
			    .days = CA_SERVER_DAYS};
	err = issue(ca, &in, &cert, &cert_len);
	if (err)
		goto out;
	/* The chain goes out whole, so a joining host finds the CA it pinned in it. */
	ca->srv_len = cert_len + ca->crt_len;
	ca->srv_pem = malloc(ca->srv_len + 1);
	if (!ca->srv_pem) {
		err = -ENOMEM;
		goto out;
	}
	memcpy(ca->srv_pem, cert, cert_len);
	memcpy(ca->srv_pem + cert_len, ca->crt_pem, ca->crt_len + 1);
	/* The key first: a crash between the two writes leaves a certificate that does not
	 * match its key, which the next start reissues. */
	err = write_file(ca, CA_SERVER_KEY_FILE, ca->srv_key_pem, ca->srv_key_len, 0600);
	if (!err)
		err = write_file(ca, CA_SERVER_CRT_FILE, ca->srv_pem, ca->srv_len, 0644);
	if (!err)
		log_info("%s: issued the agent port certificate for %s, serial %" PRIu64, __func__,
			 box_name, serial);
out:
	free(cert);
	mbedtls_pk_free(&key);
	return err;
}

int ca_open(struct ca **out, const char *dir, const char *box_name, time_t now)
{
	struct ca *ca;
	int err;

	if (!ca_name_valid(box_name)) {
		log_warnx("%s: box name \"%s\" cannot go into a certificate", __func__, box_name);
		return -EINVAL;
	}
	ca = calloc(1, sizeof(*ca));
	if (!ca)
		return -ENOMEM;
	mbedtls_pk_init(&ca->key);
	mbedtls_x509_crt_init(&ca->crt);
	if (snprintf(ca->dir, sizeof(ca->dir), "%s", dir) >= (int)sizeof(ca->dir)) {
		err = -ENAMETOOLONG;
		goto err_close;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		err = -errno;
		log_warnx("%s: %s: %s", __func__, dir, strerror(-err));
		goto err_close;
	}
	err = load_or_create_ca(ca, now);
	if (err)
		goto err_close;
	if (!server_cert_good(ca, box_name, now)) {
		err = issue_server_cert(ca, box_name, now);
		if (err)
			goto err_close;
	}
	*out = ca;
	return 0;

err_close:
	ca_close(ca);
	return err;
}

void ca_close(struct ca *ca)
{
	if (!ca)
		return;
	mbedtls_pk_free(&ca->key);
	mbedtls_x509_crt_free(&ca->crt);
	free(ca->crt_pem);
	free(ca->srv_pem);
	free_secret(ca->srv_key_pem, ca->srv_key_len);
	free(ca);
}

const char *ca_cert_pem(const struct ca *ca, size_t *len)
{
	*len = ca->crt_len;
	return ca->crt_pem;
}

const uint8_t *ca_fingerprint(const struct ca *ca)
{
	return ca->fp;
}

const char *ca_server_cert_pem(const struct ca *ca, size_t *len)
{
	*len = ca->srv_len;
	return ca->srv_pem;
}

const char *ca_server_key_pem(const struct ca *ca, size_t *len)
{
	*len = ca->srv_key_len;
	return ca->srv_key_pem;
}

uint64_t ca_last_serial(const struct ca *ca)
{
	return ca->serial;
}

/* Proof of possession: mbedTLS parses a request without checking its signature, so the
 * signature over the request info is verified here with the key the request carries. */
static int csr_signature_ok(const mbedtls_x509_csr *csr)
{
	const mbedtls_md_info_t *md = mbedtls_md_info_from_type(csr->sig_md);
	unsigned char hash[MBEDTLS_MD_MAX_SIZE];

	if (!md || mbedtls_md(md, csr->cri.p, csr->cri.len, hash))
		return 0;
	return mbedtls_pk_verify_ext(csr->sig_pk, csr->sig_opts, (mbedtls_pk_context *)&csr->pk,
				     csr->sig_md, hash, mbedtls_md_get_size(md), csr->sig.p,
				     csr->sig.len) == 0;
}

int ca_sign_csr(struct ca *ca, const char *csr_pem, size_t csr_len, const char *host_name,
		time_t now, unsigned days, char **cert_pem, size_t *cert_len, uint64_t *serial)
{
	char subject[128], *buf;
	mbedtls_x509_csr csr;
	struct issue in;
	uint64_t sn;
	int err;

	if (!ca_name_valid(host_name)) {
		log_warnx("%s: refused: host name is not a valid name", __func__);
		return -EINVAL;
	}
	if (days == 0 || days > CA_CA_DAYS)
		return -EINVAL;
	buf = malloc(csr_len + 1);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, csr_pem, csr_len);
	buf[csr_len] = '\0';
	mbedtls_x509_csr_init(&csr);
	if (mbedtls_x509_csr_parse(&csr, (const unsigned char *)buf, csr_len + 1)) {
		log_warnx("%s: host %s: refused: the certificate request does not parse", __func__,
			  host_name);
		err = -EBADMSG;
		goto out;
	}
	if (!is_p256(&csr.pk)) {
		log_warnx("%s: host %s: refused: the request's key is not EC P-256", __func__,
			  host_name);
		err = -EKEYREJECTED;
		goto out;
	}
	if (!csr_signature_ok(&csr)) {
		log_warnx("%s: host %s: refused: the request's signature does not verify", __func__,
			  host_name);
		err = -EBADMSG;
		goto out;
	}
	err = next_serial(ca, &sn);
	if (err)
		goto out;
	snprintf(subject, sizeof(subject), "CN=%s,O=Holdfast,OU=host", host_name);
	in = (struct issue){.subject_key = &csr.pk,
			    .subject = subject,
			    .eku = eku_client,
			    .eku_len = sizeof(eku_client),
			    .serial = sn,
			    .now = now,
			    .days = days};
	err = issue(ca, &in, cert_pem, cert_len);
	if (err)
		goto out;
	*serial = sn;
	log_info("%s: host %s: certificate issued, serial %" PRIu64, __func__, host_name, sn);
out:
	mbedtls_x509_csr_free(&csr);
	free(buf);
	return err;
}

int ca_make_csr(const char *cn, char **key_pem, size_t *key_len, char **csr_pem, size_t *csr_len)
{
	char subject[128], *kp = NULL, *cp = NULL;
	mbedtls_x509write_csr w;
	mbedtls_pk_context key;
	size_t kl = 0;
	int err;

	if (!ca_name_valid(cn))
		return -EINVAL;
	mbedtls_pk_init(&key);
	mbedtls_x509write_csr_init(&w);
	err = gen_key(&key);
	if (err)
		goto out;
	err = key_to_pem(&key, &kp, &kl);
	if (err)
		goto out;
	snprintf(subject, sizeof(subject), "CN=%s", cn);
	mbedtls_x509write_csr_set_key(&w, &key);
	mbedtls_x509write_csr_set_md_alg(&w, MBEDTLS_MD_SHA256);
	err = -EIO;
	if (mbedtls_x509write_csr_set_subject_name(&w, subject))
		goto out;
	cp = malloc(PEM_MAX);
	if (!cp) {
		err = -ENOMEM;
		goto out;
	}
	if (mbedtls_x509write_csr_pem(&w, (unsigned char *)cp, PEM_MAX, rng_cb, NULL))
		goto out;
	*key_pem = kp;
	*key_len = kl;
	*csr_pem = cp;
	*csr_len = strlen(cp);
	kp = cp = NULL;
	err = 0;
out:
	free_secret(kp, kl);
	free(cp);
	mbedtls_x509write_csr_free(&w);
	mbedtls_pk_free(&key);
	return err;
}
