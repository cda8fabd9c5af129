/*
 * policy.h — the gateway role's jail (DESIGN.md §5), implemented in policy-gateway.c.
 *
 * realm-gateway calls gw_jail() once, after the HTTP listener is bound, the tenants file is
 * loaded and the runner backend's I/O thread runs, and before it takes signals (serving
 * starts at once on MHD's threads, which the TSYNC install covers as well). From then on
 * every thread of the process runs under the gateway's seccomp allowlist; a syscall outside
 * it kills the whole process with SIGSYS.
 */
#ifndef GW_POLICY_H
#define GW_POLICY_H

#include <stddef.h>

/* Applies the jail to every thread: dumpability off, core size 0, TZ pinned, NSS warmed up,
 * then the seccomp allowlist (common/seccomp role table, argument rules included). Irreversible.
 * Returns 0 or a negative realm error with err naming the step that failed. */
int gw_jail(char *err, size_t errlen);

/* Writes the filter as libseccomp pseudo filter code to fd (for docs and for debugging a
 * kill); installs nothing. */
int gw_policy_export(int fd, char *err, size_t errlen);

/* One line naming what the jail allows, for the start-up log. */
const char *gw_policy_summary(void);

#endif
