/* The one wrapper over the TLS library (mbedTLS 2.28 today): TLS 1.2 with mutual certificate
 * authentication over a non-blocking fd that the caller's event loop owns, plus the process's
 * random generator. No mbedTLS type appears here, so the library can move to 3.6 without
 * touching a caller. */
#ifndef HOLDFAST_LIB_TLS_H
#define HOLDFAST_LIB_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum tls_role { TLS_ROLE_SERVER, TLS_ROLE_CLIENT };

/* What a call that returned -EAGAIN waits for: poll the fd for this, then call again. */
enum tls_want { TLS_WANT_NONE = 0, TLS_WANT_READ = 1, TLS_WANT_WRITE = 2 };

#define TLS_FINGERPRINT_LEN 32 /* SHA-256 of the certificate's DER */
#define TLS_CN_MAX	    64 /* RFC 5280 ub-common-name, plus the terminating NUL below */

/* Refusals have their own errnos, so a caller can tell the peer and the log what happened:
 *   -ENOKEY        the peer presented no certificate where one is required;
 *   -EKEYREJECTED  the peer's certificate does not chain to our CA (or is otherwise bad);
 *   -EKEYEXPIRED   the peer's certificate is outside its validity period;
 *   -ECONNREFUSED  the peer refused us (it sent a fatal alert, e.g. about our certificate);
 *   -ECONNRESET    the peer closed the connection without a close_notify;
 *   -EPROTO        any other TLS failure (the log line carries the library's text).
 * Each refusal is logged once by the wrapper, with the connection's label. */

struct tls_config;
struct tls_conn;

/* Fill buf with bytes from the process's CTR_DRBG, seeded from the kernel's entropy
 * (getrandom) and reseeded after fork. Thread-safe. Returns 0 or a negative errno. */
int tls_random(void *buf, size_t len);

/* A config holds what every connection of one role shares: the CA chain we trust, our own
 * certificate and key, and the verification policy. It must outlive its connections. */
int tls_config_new(struct tls_config **out, enum tls_role role);
void tls_config_free(struct tls_config *cfg);

/* The CA chain that peers' certificates must chain to (PEM, one or more certificates). */
int tls_config_set_ca_pem(struct tls_config *cfg, const char *pem, size_t len);
int tls_config_set_ca_file(struct tls_config *cfg, const char *path);

/* Our own certificate (PEM, leaf first, optionally followed by its chain) and private key. */
int tls_config_set_own_pem(struct tls_config *cfg, const char *cert_pem, size_t cert_len,
			   const char *key_pem, size_t key_len);
int tls_config_set_own_files(struct tls_config *cfg, const char *cert_path, const char *key_path);

/* Server role only: accept a client without a certificate (for the join listener, where the
 * host has none yet). A certificate that is presented must still verify. */
int tls_config_set_client_cert_optional(struct tls_config *cfg);

/* Client role only, in place of a CA chain: trust the server if its chain contains a CA
 * certificate whose SHA-256 fingerprint is pin and the server certificate verifies against
 * it. This is how a joining host, which knows only the fingerprint printed with its token,
 * authenticates the box. */
int tls_config_pin_ca(struct tls_config *cfg, const uint8_t pin[TLS_FINGERPRINT_LEN]);

/* A connection over fd (non-blocking, owned by the caller, not closed by tls_conn_free).
 * label names the peer in log lines ("agent 10.0.0.5:41234"). */
int tls_conn_new(struct tls_conn **out, struct tls_config *cfg, int fd, const char *label);
void tls_conn_free(struct tls_conn *conn);

/* Client role: the name the server's certificate must carry (CN or DNS SAN). */
int tls_conn_set_peer_name(struct tls_conn *conn, const char *name);

/* Drive the handshake. Returns 0 when it is complete and the peer is verified, -EAGAIN when
 * it must wait (see tls_conn_want), or a negative errno from the table above. */
int tls_conn_handshake(struct tls_conn *conn);

/* Application data after the handshake. read returns the number of bytes read (> 0), 0 when
 * the peer closed cleanly, -EAGAIN, or a negative errno; write returns the number of bytes
 * taken (> 0), -EAGAIN, or a negative errno. After -EAGAIN, retry with the same arguments. */
ssize_t tls_conn_read(struct tls_conn *conn, void *buf, size_t len);
ssize_t tls_conn_write(struct tls_conn *conn, const void *buf, size_t len);

/* What the last -EAGAIN waits for. */
enum tls_want tls_conn_want(const struct tls_conn *conn);

/* Decrypted bytes already buffered: the fd will not become readable for them, so an event
 * loop must read again while this is non-zero. */
size_t tls_conn_pending(const struct tls_conn *conn);

/* Send close_notify. Returns 0, -EAGAIN, or a negative errno. */
int tls_conn_close_notify(struct tls_conn *conn);

/* The verified peer certificate: its subject CN (NUL-terminated, printable ASCII only) and
 * its SHA-256 fingerprint. -ENOKEY when the peer presented none, -ENOTCONN before the
 * handshake is complete. */
bool tls_conn_has_peer_cert(const struct tls_conn *conn);
int tls_conn_peer_cn(const struct tls_conn *conn, char *buf, size_t len);
int tls_conn_peer_fingerprint(const struct tls_conn *conn, uint8_t out[TLS_FINGERPRINT_LEN]);

/* SHA-256 of a buffer, for modules that need a hash and should not name the TLS library. */
int tls_sha256(const void *data, size_t len, uint8_t out[TLS_FINGERPRINT_LEN]);

/* The SHA-256 fingerprint of the first certificate in a PEM buffer. */
int tls_pem_fingerprint(const char *pem, size_t len, uint8_t out[TLS_FINGERPRINT_LEN]);

/* Lower-case hex of a fingerprint, with a NUL: out must hold 2 * TLS_FINGERPRINT_LEN + 1. */
void tls_fingerprint_hex(const uint8_t fp[TLS_FINGERPRINT_LEN], char *out);

#endif
