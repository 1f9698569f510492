/* idle_sessions: log N sessions in to one target and hold them idle, to measure what an idle
 * session costs the target in memory.
 *
 *   idle_sessions URL N
 *
 * Each session has its own initiator name (one I_T nexus each, as N hosts would be). When all
 * are logged in it prints "ready N" on stdout, then keeps answering the target (NOP-In pings)
 * until stdin closes or SIGTERM/SIGINT arrives, and logs every session out. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <iscsi/iscsi.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

static struct iscsi_context *login_one(const char *url_text, int i)
{
	char name[128];
	struct iscsi_context *iscsi;
	struct iscsi_url *url;

	snprintf(name, sizeof(name), "iqn.2026-11.org.holdfast:idle-%d", i);
	iscsi = iscsi_create_context(name);
	if (!iscsi)
		return NULL;
	url = iscsi_parse_full_url(iscsi, url_text);
	if (!url) {
		fprintf(stderr, "idle_sessions: bad URL %s: %s\n", url_text,
			iscsi_get_error(iscsi));
		iscsi_destroy_context(iscsi);
		return NULL;
	}
	iscsi_set_targetname(iscsi, url->target);
	iscsi_set_session_type(iscsi, ISCSI_SESSION_NORMAL);
	iscsi_set_header_digest(iscsi, ISCSI_HEADER_DIGEST_NONE);
	if (iscsi_full_connect_sync(iscsi, url->portal, url->lun) != 0) {
		fprintf(stderr, "idle_sessions: login %d failed: %s\n", i, iscsi_get_error(iscsi));
		iscsi_destroy_url(url);
		iscsi_destroy_context(iscsi);
		return NULL;
	}
	iscsi_destroy_url(url);
	return iscsi;
}

int main(int argc, char **argv)
{
	struct iscsi_context **s;
	struct pollfd *pfd;
	struct sigaction sa = {.sa_handler = on_signal};
	int n, i;

	if (argc != 3 || (n = atoi(argv[2])) < 0) {
		fprintf(stderr, "usage: idle_sessions URL N\n");
		return 2;
	}
	s = calloc(n + 1, sizeof(*s));
	pfd = calloc(n + 1, sizeof(*pfd));
	if (!s || !pfd)
		return 1;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	for (i = 0; i < n; i++) {
		s[i] = login_one(argv[1], i);
		if (!s[i])
			return 1;
	}
	printf("ready %d\n", n);
	fflush(stdout);
	while (!stop) {
		for (i = 0; i < n; i++) {
			pfd[i].fd = iscsi_get_fd(s[i]);
			pfd[i].events = iscsi_which_events(s[i]);
			pfd[i].revents = 0;
		}
		pfd[n].fd = STDIN_FILENO;
		pfd[n].events = POLLIN;
		pfd[n].revents = 0;
		if (poll(pfd, n + 1, 1000) < 0) {
			if (errno == EINTR)
				continue;
			perror("poll");
			return 1;
		}
		if (pfd[n].revents) {
			char c;

			if (read(STDIN_FILENO, &c, 1) <= 0)
				break;
		}
		for (i = 0; i < n; i++) {
			if (iscsi_service(s[i], pfd[i].revents) < 0) {
				fprintf(stderr, "idle_sessions: session %d failed: %s\n", i,
					iscsi_get_error(s[i]));
				return 1;
			}
		}
	}
	for (i = 0; i < n; i++) {
		iscsi_logout_sync(s[i]);
		iscsi_destroy_context(s[i]);
	}
	return 0;
}
