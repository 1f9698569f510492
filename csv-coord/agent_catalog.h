/* The agent protocol's catalog messages in the coord plane's terms and back: a request
 * (VDISK_CREATE, ...) becomes the command and JSON object the catalog part takes
 * (coord_catalog_host_request), and the catalog's JSON answer becomes the frames that answer
 * the agent (VDISK_INFO, VDISK_LIST_END, VDISK_DELETED or ERROR). Pure: no sockets, no
 * catalog; coord_agents.c and coord_main.c do the I/O around it. docs/agent-protocol.md,
 * "Catalog". */
#ifndef HOLDFAST_CSV_COORD_AGENT_CATALOG_H
#define HOLDFAST_CSV_COORD_AGENT_CATALOG_H

#include <stdint.h>

#include <jansson.h>

#include "csv-coord/agent_proto.h"

/* The command and request (a new JSON object, the caller's) for a catalog request m. Returns
 * AGENT_E_NONE, or AGENT_E_UNEXPECTED for a message an agent does not send (VDISK_INFO, ...). */
enum agent_err agent_catalog_request(const struct agent_msg *m, const char **cmd, json_t **req);

/* The agent error code for the catalog's "code" string of a refused request. */
enum agent_err agent_catalog_code(const char *code);

/* Turn the catalog's answer r to a request of type req_type (request id req_id) from host
 * host_name into frames, each given to emit (which sends it; m is only valid during the call).
 * An answer the frames cannot carry becomes ERROR INTERNAL. Returns how many frames were
 * emitted.
 *
 * A VDISK_LIST (list_req: its start_after and limit; NULL as an empty request) is answered one
 * page at a time: the disks in id order after start_after, at most limit of them and never more
 * than AGENT_LIST_PAGE_MAX (a request without a limit gets that many), then VDISK_LIST_END with
 * more = 1 and the id to start the next page after when disks remain. */
typedef void (*agent_catalog_emit_fn)(void *ctx, struct agent_msg *m);
unsigned agent_catalog_reply(uint8_t req_type, uint32_t req_id,
			     const struct agent_vdisk_list *list_req, const char *host_name,
			     json_t *r, agent_catalog_emit_fn emit, void *ctx);

#endif
