/* The Holdfast configuration: one libconfig file (or the embedded default) parsed into plain
 * structs that every process reads. Parsing checks everything and reports `file:line: what`. */
#ifndef HOLDFAST_LIB_CONFIG_H
#define HOLDFAST_LIB_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#define HF_NAME_MAX   64
#define HF_IQN_MAX    224 /* RFC 7143 6.1: iSCSI names are at most 223 bytes */
#define HF_SECRET_MAX 256
#define HF_ADDR_MAX   64

enum hf_bs_type {
	HF_BS_FILE,   /* regular file or block device, O_DIRECT + libaio */
	HF_BS_MEMORY, /* anonymous memory, for tests and benchmarks */
};

struct hf_portal {
	char name[HF_NAME_MAX];
	char address[HF_ADDR_MAX]; /* numeric IPv4 or IPv6 */
	uint16_t port;
	uint16_t tpgt; /* target portal group tag; also the relative target port id */
	int line;
};

struct hf_backstore {
	char name[HF_NAME_MAX];
	enum hf_bs_type type;
	char path[PATH_MAX]; /* HF_BS_FILE: absolute, or relative to data_dir (resolved) */
	uint64_t size;	     /* bytes; a file smaller than this is extended sparsely */
	uint32_t block_size; /* 512 or 4096 */
	uint32_t delay_ms;   /* test-only: delay every I/O completion by this much */
	int line;
};

struct hf_chap {
	char user[HF_NAME_MAX * 4];
	char secret[HF_SECRET_MAX];
};

struct hf_lun {
	uint32_t id;   /* LUN number as the initiator sees it */
	int backstore; /* index into hf_config.backstores */
	int line;
};

struct hf_target {
	char iqn[HF_IQN_MAX];
	char alias[HF_NAME_MAX * 4];
	int *portals; /* indexes into hf_config.portals */
	size_t nportals;
	struct hf_lun *luns;
	size_t nluns;
	char (*acl)[HF_IQN_MAX]; /* initiator names allowed; none means every initiator */
	size_t nacl;
	struct hf_chap *chap; /* initiator credentials the target accepts; none: no CHAP */
	size_t nchap;
	struct hf_chap mutual; /* the target's own credentials for mutual CHAP */
	int has_mutual;
	int line;
};

/* The optional cluster section: the coordinator (coord plane) runs only when it is present. */
#define HF_CLUSTER_HOSTS_MAX 64 /* QUORUM_MAX_HOSTS */
#define HF_CLUSTER_VOTES_MAX 16 /* QUORUM_MAX_VOTES */

struct hf_cluster_host {
	char name[HF_NAME_MAX]; /* the host name its agent joins with */
	unsigned votes;		/* 1..HF_CLUSTER_VOTES_MAX */
	int line;
};

struct hf_cluster {
	int enabled;		   /* the section exists */
	char name[HF_NAME_MAX];	   /* the cluster's (and the box's certificate's) name */
	char address[HF_ADDR_MAX]; /* numeric IPv4 or IPv6 the agent and join ports bind */
	uint16_t agent_port;	   /* TLS, client certificate required */
	uint16_t join_port;	   /* TLS, client certificate optional, join requests only */
	uint32_t heartbeat_ms;	   /* H */
	unsigned miss_threshold;   /* M */
	int wait_for_all;
	struct hf_cluster_host *hosts; /* none: any host may join, with one vote */
	size_t nhosts;
	int line;
	/* The configured target whose LUNs the virtual disks become; "" when there is none to
	 * choose (several targets and no cluster.target). Defaults to the only target. */
	char target[HF_IQN_MAX];
	int target_line;
};

struct hf_config {
	char path[PATH_MAX];	       /* the file it came from, or "(default)" */
	char data_dir[PATH_MAX];       /* absolute */
	char control_socket[PATH_MAX]; /* the unix socket holdfastctl talks to */
	int workers;		       /* target worker threads */
	/* A write held by a paused (maintenance) LUN longer than this is answered BUSY. */
	uint32_t maintenance_hold_ms;
	int log_level;
	struct hf_portal *portals;
	size_t nportals;
	struct hf_backstore *backstores;
	size_t nbackstores;
	struct hf_target *targets;
	size_t ntargets;
	struct hf_chap *discovery_chap; /* credentials required for discovery sessions */
	size_t ndiscovery_chap;
	uint8_t box_id[16]; /* random, created once in data_dir/box-id; names LUNs (NAA) */
	struct hf_cluster cluster;
};

/* The embedded default, used when holdfastd runs without a config file: a data folder in
 * the working directory, one sparse 1 GiB LUN, iSCSI on 127.0.0.1:3260. */
extern const char hf_config_default_text[];

/* Parse and check a config. On failure returns a negative errno and writes one line
 * `file:line: what is wrong` into err. The result is freed with hf_config_free(). */
int hf_config_load_file(const char *path, struct hf_config **out, char *err, size_t errlen);
int hf_config_load_string(const char *text, const char *name, struct hf_config **out, char *err,
			  size_t errlen);
void hf_config_free(struct hf_config *cfg);

/* Create data_dir if needed and load (or create, atomically) data_dir/box-id. */
int hf_config_prepare_data_dir(struct hf_config *cfg, char *err, size_t errlen);

/* Helpers the parser uses, public for the CLI, the web plane and the target's checks. */
/* Parse "4096", "64K", "256M", "1G", "2T" (powers of 1024) into bytes; -EINVAL or -ERANGE. */
int hf_config_parse_size(const char *text, uint64_t *out);
/* Check an iSCSI name (iqn., eui., naa.; rfc7143 4.2.7); on -EINVAL *why says what is wrong. */
int hf_config_check_iscsi_name(const char *name, const char **why);

#endif
