#include "lib/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static char log_proc[32] = "holdfastd";
static int log_lvl = LOG_LVL_INFO;
static int log_syslog;

void log_init(const char *procname, int level, int to_syslog)
{
	log_procname(procname);
	log_lvl = level;
	log_syslog = to_syslog;
	if (to_syslog)
		openlog("holdfastd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_procname(const char *procname)
{
	snprintf(log_proc, sizeof(log_proc), "%s", procname);
}

int log_level(void)
{
	return log_lvl;
}

static void vlog(int prio, const char *fmt, va_list ap, int with_errno)
{
	char msg[1024];
	int saved = errno;
	struct timespec ts;
	struct tm tm;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (with_errno) {
		size_t n = strlen(msg);
		snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(saved));
	}
	if (log_syslog) {
		syslog(prio, "%s: %s", log_proc, msg);
	} else {
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		fprintf(stderr, "%02d:%02d:%02d.%03ld %s[%d]: %s\n", tm.tm_hour, tm.tm_min,
			tm.tm_sec, ts.tv_nsec / 1000000, log_proc, (int)getpid(), msg);
	}
	errno = saved;
}

#define LOG_BODY(prio, with_errno)                                                                 \
	do {                                                                                       \
		va_list ap;                                                                        \
		va_start(ap, fmt);                                                                 \
		vlog(prio, fmt, ap, with_errno);                                                   \
		va_end(ap);                                                                        \
	} while (0)

void log_warn(const char *fmt, ...)
{
	LOG_BODY(LOG_WARNING, 1);
}

void log_warnx(const char *fmt, ...)
{
	LOG_BODY(LOG_WARNING, 0);
}

void log_info(const char *fmt, ...)
{
	if (log_lvl >= LOG_LVL_INFO)
		LOG_BODY(LOG_INFO, 0);
}

void log_debug(const char *fmt, ...)
{
	if (log_lvl >= LOG_LVL_DEBUG)
		LOG_BODY(LOG_DEBUG, 0);
}

void fatal(const char *fmt, ...)
{
	LOG_BODY(LOG_CRIT, 1);
	exit(1);
}

void fatalx(const char *fmt, ...)
{
	LOG_BODY(LOG_CRIT, 0);
	exit(1);
}
