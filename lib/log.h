/* Logging for every Holdfast process: to stderr with the process name, or to syslog when
 * daemonized. Call sites name their function: log_warnx("%s: lun %u: %s", __func__, ...). */
#ifndef HOLDFAST_LIB_LOG_H
#define HOLDFAST_LIB_LOG_H

#include <stdarg.h>

enum log_level { LOG_LVL_WARN = 0, LOG_LVL_INFO = 1, LOG_LVL_DEBUG = 2 };

void log_init(const char *procname, int level, int to_syslog);
void log_procname(const char *procname);
int log_level(void);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
