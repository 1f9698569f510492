/* The box's cluster CA: it is created in the data folder on first start and loaded on later
 * starts, it signs each joining host's certificate request into a client certificate, and it
 * issues the box's own server certificate for the agent port. */
#ifndef HOLDFAST_COORD_CA_H
#define HOLDFAST_COORD_CA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "lib/tls.h"

/* Files in the CA's folder. Keys are mode 0600, certificates 0644. */
#define CA_KEY_FILE	   "ca.key"	/* the CA's EC P-256 private key, PEM */
#define CA_CERT_FILE	   "ca.crt"	/* the self-signed CA certificate, PEM */
#define CA_SERIAL_FILE	   "ca.serial"	/* the last serial number issued, decimal */
#define CA_SERVER_KEY_FILE "server.key" /* the agent port's private key, PEM */
#define CA_SERVER_CRT_FILE "server.crt" /* the agent port's certificate, then the CA's */

#define CA_CA_DAYS	     7305 /* 20 years: the CA outlives the hardware */
#define CA_SERVER_DAYS	     825 /* the server certificate is reissued on start when close to expiry */
#define CA_SERVER_RENEW_DAYS 30
#define CA_HOST_DAYS	     3650 /* host certificates: no renewal protocol exists yet */
#define CA_NAME_MAX	     63	  /* host and box names, RFC 1035 label-like length */

struct ca;

/* Load the CA from dir, or create it when dir holds none (dir itself is created 0700 if
 * missing). box_name becomes the CN of the agent port's certificate, which is (re)issued when
 * missing, for another name, not signed by this CA, or within CA_SERVER_RENEW_DAYS of expiry
 * at now. Returns 0, -ENOKEY when a CA certificate exists without its key, -EKEYREJECTED when
 * the key and certificate do not belong together, or another negative errno. */
int ca_open(struct ca **out, const char *dir, const char *box_name, time_t now);
void ca_close(struct ca *ca);

/* The CA certificate (PEM) and its SHA-256 fingerprint, which a joining host pins. */
const char *ca_cert_pem(const struct ca *ca, size_t *len);
const uint8_t *ca_fingerprint(const struct ca *ca);

/* The agent port's certificate chain (server certificate, then CA certificate) and key, PEM,
 * ready for tls_config_set_own_pem(). */
const char *ca_server_cert_pem(const struct ca *ca, size_t *len);
const char *ca_server_key_pem(const struct ca *ca, size_t *len);

/* The last serial number issued. */
uint64_t ca_last_serial(const struct ca *ca);

/* A host or box name that may go into a CN: 1..CA_NAME_MAX characters of letters, digits, '-'
 * and '.', starting with a letter or digit. Anything else could change the meaning of the
 * distinguished name it is placed in. */
bool ca_name_valid(const char *name);

/* Sign a host's certificate request (PEM) into a client certificate: the subject is
 * CN=host_name whatever the request asked for, the key must be EC P-256 and the request's
 * signature must verify (the host holds the key). Valid from now (less an hour of clock skew)
 * for days. The new serial is persisted before the certificate is returned. On success
 * *cert_pem is a malloc'd NUL-terminated PEM the caller frees. Returns 0, -EINVAL for a bad
 * host name, -EBADMSG for a request that does not parse or whose signature fails, -EKEYREJECTED
 * for a key of another type, or another negative errno. */
int ca_sign_csr(struct ca *ca, const char *csr_pem, size_t csr_len, const char *host_name,
		time_t now, unsigned days, char **cert_pem, size_t *cert_len, uint64_t *serial);

/* The host's half of a join: make an EC P-256 key and a certificate request for cn. Both
 * outputs are malloc'd NUL-terminated PEM the caller frees (wipe the key first). */
int ca_make_csr(const char *cn, char **key_pem, size_t *key_len, char **csr_pem, size_t *csr_len);

#endif
