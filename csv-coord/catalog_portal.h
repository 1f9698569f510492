/* A host's preferred portals, as the administrator gives them (`holdfastctl host portals`):
 * which of the box's portal addresses a host should reach the box over. A host whose iSCSI
 * connections all arrive on other addresses reaches the box only over a non-preferred path:
 * its access is "redirected" (catalog.h). Pure: parsing, the canonical text, matching. */
#ifndef HOLDFAST_CSV_COORD_CATALOG_PORTAL_H
#define HOLDFAST_CSV_COORD_CATALOG_PORTAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CATALOG_PORTAL_MAX  64 /* text of one portal spec, NUL included */
#define CATALOG_PORTALS_MAX 16 /* preferred portals of one host */

/* One spec, in one of three forms (IPv4 or IPv6, numeric only):
 *	ADDR:PORT	10.0.0.5:3260, [fd00::5]:3260	that portal
 *	ADDR		10.0.0.5, fd00::5		that address, any port
 *	NET/LEN		10.0.0.0/24, fd00::/64		every address of the network, any port */
struct catalog_portal {
	int family;	  /* AF_INET or AF_INET6 */
	uint8_t addr[16]; /* network order; IPv4 in the first 4 bytes */
	unsigned prefix;  /* leading bits that must match: 32/128 for one address */
	uint16_t port;	  /* 0: any */
};

/* Parse spec; -EINVAL for anything else (host names, a port of 0, a prefix too long, bits
 * set past the prefix of a network). */
int catalog_portal_parse(const char *spec, struct catalog_portal *out);
/* The canonical text (what is stored and shown): inet_ntop's form, brackets for IPv6 with a
 * port. */
void catalog_portal_format(const struct catalog_portal *p, char *buf, size_t len);
/* Does a connection's local address "ADDR:PORT" or "[ADDR6]:PORT" (as the target reports
 * it) fall under p? An IPv4-mapped IPv6 address counts as its IPv4 address. */
bool catalog_portal_match(const struct catalog_portal *p, const char *local);

#endif
