/* holdfastd: the Holdfast daemon. The parent parses the configuration, starts one process per
 * plane and supervises them; it stays in the foreground and logs to stderr. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "lib/log.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: holdfastd [-c FILE] [-n] [-d] [-v]\n");
}

int main(int argc, char **argv)
{
	const char *conffile = NULL;
	int check_only = 0, debug = 0, verbose = 0, c;

	while ((c = getopt(argc, argv, "c:ndvh")) != -1) {
		switch (c) {
		case 'c':
			conffile = optarg;
			break;
		case 'n':
			check_only = 1;
			break;
		case 'd':
			debug = 1;
			break;
		case 'v':
			verbose++;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 1;
	}
	log_init("parent", debug || verbose ? LOG_LVL_DEBUG : LOG_LVL_INFO, 0);
	log_debug("%s: config %s, check only %d", __func__, conffile ? conffile : "(default)",
		  check_only);
	return 0;
}
