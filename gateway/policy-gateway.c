/*
 * policy-gateway.c — the gateway role's jail (DESIGN.md §5): dumpability, core size, and the
 * seccomp allowlist, applied once the listener is bound, the tenants file loaded and the
 * runner backend's threads run (see policy.h).
 *
 * What the jailed gateway still does, and therefore what is allowed:
 *  - serve HTTP: libmicrohttpd's listener thread accepts (accept4) and starts one thread per
 *    connection (clone with CLONE_THREAD only), which polls, reads and writes its socket;
 *  - talk ZeroMQ to the runners: libzmq's I/O thread polls and sends/receives, and — unlike
 *    the runner, which only accepts — it *reconnects* to a runner that restarted and connects
 *    to replicas added by a reload. So socket() and connect() stay allowed, socket() only for
 *    AF_UNIX (ipc://), AF_INET and AF_INET6 (tcp://): no netlink, packet or other families;
 *  - reload the tenants file on SIGHUP: openat() stays allowed, but only read-only (the flags
 *    argument may not carry O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND or O_TMPFILE's
 *    bit). Why not pre-open the file or its directory: realmctl replaces the file with a
 *    rename, so an fd held from start-up would keep reading the old file, and a directory fd
 *    does not confine openat() — an absolute path ignores the dirfd argument, which seccomp
 *    cannot follow into memory. Read-only opening is the simplest rule that keeps reload
 *    working and still refuses every write, creation and truncation;
 *  - take signals synchronously (rt_sigtimedwait for sigwait) and exit.
 * Never allowed: execve/execveat, fork/vfork and clone without CLONE_THREAD (clone3 answers
 * ENOSYS so glibc falls back to the checkable clone), ptrace, mount, bind/listen on new
 * sockets, setuid & co., prctl/seccomp (the filter cannot be changed), executable mappings.
 *
 * One filter, built directly with libseccomp from the named sets of common/src/seccomp.c plus
 * the gateway's own rules. The gateway needs argument filters on syscalls the common wrapper
 * only offers bare (socket by domain, openat by flags); a second stacked filter would have
 * to leave prctl and seccomp() open between the two installs, so the whole allowlist is
 * built here instead, applying each set entry's constraint kind exactly as the common
 * wrapper does (mmap/mprotect without PROT_EXEC, clone with CLONE_THREAD, tgkill/kill on
 * our own pid, clone3 → ENOSYS).
 */
#include "policy.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <sched.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "realm/error.h"
#include "realm/seccomp.h"

/* The named sets the gateway needs whole (each rule's reason is in common/src/seccomp.c). */
static const char *const gateway_sets[] = {
    "basic-io", /* read/write/close on sockets and eventfds; stderr logging */
    "memory",   /* malloc; mmap/mprotect never with PROT_EXEC */
    "time",     /* clocks for deadlines, rate limiters and log timestamps; timerfds */
    "signals",  /* signal masks, abort() on our own pid */
    "process",  /* own ids, getrandom (request ids, completion ids), sched_yield */
    "threads",  /* MHD's thread per connection; clone only with CLONE_THREAD */
    "zmq-io",   /* libzmq's I/O thread and zmq_poll: epoll, poll, send/recv, eventfd2 */
    "exit",     /* exit and exit_group */
};

/* Unconstrained single syscalls beyond the sets, one reason each. */
static const struct {
  const char *name;
  const char *why;
} gateway_extra[] = {
    {"accept4", "MHD accepts client connections on the listener bound before the jail"},
    {"connect", "libzmq reconnects to a restarted runner and connects to replicas added by a "
                "reload (the socket itself is checked by domain)"},
    {"setsockopt", "MHD and libzmq tune new connections (TCP_NODELAY, buffer sizes, keep-alive)"},
    {"getsockname", "libzmq names a connection's local address for its monitor events"},
    {"getpeername", "libzmq and MHD name a connection's peer"},
    {"rt_sigtimedwait", "the main thread takes SIGHUP/SIGTERM/SIGINT with sigwait()"},
    {"prctl", "MHD and libzmq name their new threads (PR_SET_NAME); only that option"},
};

/* openat flags that would write, create or truncate (refused by the openat rule). */
/* O_TMPFILE includes O_DIRECTORY's bit; only its own bit is refused, so directories open. */
#define GW_OPEN_WRITE_FLAGS \
  (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND | (O_TMPFILE & ~O_DIRECTORY))

struct builder {
  scmp_filter_ctx ctx;
  pid_t pid;
  int added[512]; /* syscall numbers ruled (sets overlap: threads and memory share mmap) */
  size_t n_added;
};

static bool builder_has(const struct builder *b, int nr) {
  for (size_t i = 0; i < b->n_added; i++)
    if (b->added[i] == nr) return true;
  return false;
}

/* One allow rule for nr with the constraint its kind requires (common/src/seccomp.c). */
static int add_kind(struct builder *b, const char *name, realm_seccomp_rule_kind kind, char *err,
                    size_t errlen) {
  int nr = seccomp_syscall_resolve_name(name);
  if (nr < 0) return 0; /* not on this architecture (sets are written for several) */
  if (builder_has(b, nr)) return 0;
  if (b->n_added == sizeof b->added / sizeof b->added[0]) {
    snprintf(err, errlen, "gateway policy: too many syscalls");
    return REALM_E_TOO_LARGE;
  }
  int rc;
  switch (kind) {
  case REALM_SECCOMP_ALLOW_NO_EXEC:
    rc = seccomp_rule_add(b->ctx, SCMP_ACT_ALLOW, nr, 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    break;
  case REALM_SECCOMP_ALLOW_THREAD:
    rc = seccomp_rule_add(b->ctx, SCMP_ACT_ALLOW, nr, 1,
                          SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
    break;
  case REALM_SECCOMP_ALLOW_SELF:
    rc = seccomp_rule_add(b->ctx, SCMP_ACT_ALLOW, nr, 1, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)b->pid, 0));
    break;
  case REALM_SECCOMP_ENOSYS:
    rc = seccomp_rule_add(b->ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
    break;
  case REALM_SECCOMP_ALLOW:
  default:
    rc = seccomp_rule_add(b->ctx, SCMP_ACT_ALLOW, nr, 0);
    break;
  }
  if (rc != 0) {
    snprintf(err, errlen, "gateway policy: rule for '%s': %s", name, strerror(-rc));
    return REALM_E_SYSTEM;
  }
  b->added[b->n_added++] = nr;
  return 0;
}

/* Several allow rules for one syscall, each with one comparison: the kernel allows the call
 * when any of them matches. */
static int add_args(struct builder *b, const char *name, unsigned arg, enum scmp_compare op,
                    const scmp_datum_t *values, size_t n, scmp_datum_t mask, char *err,
                    size_t errlen) {
  int nr = seccomp_syscall_resolve_name(name);
  if (nr < 0) {
    snprintf(err, errlen, "gateway policy: '%s' is not a syscall here", name);
    return REALM_E_NOT_FOUND;
  }
  for (size_t i = 0; i < n; i++) {
    struct scmp_arg_cmp c = {.arg = arg, .op = op,
                             .datum_a = op == SCMP_CMP_MASKED_EQ ? mask : values[i],
                             .datum_b = op == SCMP_CMP_MASKED_EQ ? values[i] : 0};
    int rc = seccomp_rule_add_array(b->ctx, SCMP_ACT_ALLOW, nr, 1, &c);
    if (rc != 0) {
      snprintf(err, errlen, "gateway policy: rule for '%s': %s", name, strerror(-rc));
      return REALM_E_SYSTEM;
    }
  }
  b->added[b->n_added++] = nr;
  return 0;
}

static int build(struct builder *b, char *err, size_t errlen) {
  memset(b, 0, sizeof *b);
  b->pid = getpid();
  b->ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
  if (!b->ctx) {
    snprintf(err, errlen, "gateway policy: seccomp_init failed");
    return REALM_E_NOMEM;
  }
  int rc = seccomp_attr_set(b->ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  if (rc != 0) {
    snprintf(err, errlen, "gateway policy: bad-architecture action: %s", strerror(-rc));
    return REALM_E_SYSTEM;
  }
  int r = 0;
  for (size_t s = 0; r == 0 && s < sizeof gateway_sets / sizeof gateway_sets[0]; s++) {
    const struct realm_seccomp_set *set = realm_seccomp_find_set(gateway_sets[s]);
    if (!set) {
      snprintf(err, errlen, "gateway policy: unknown syscall set '%s'", gateway_sets[s]);
      return REALM_E_NOT_FOUND;
    }
    for (size_t i = 0; r == 0 && i < set->n_rules; i++)
      r = add_kind(b, set->rules[i].syscall, set->rules[i].kind, err, errlen);
  }
  for (size_t i = 0; r == 0 && i < sizeof gateway_extra / sizeof gateway_extra[0]; i++) {
    if (!strcmp(gateway_extra[i].name, "prctl")) {
      /* Naming the calling thread is all MHD and libzmq do; anything else (NO_NEW_PRIVS is
       * already set, dumpable, seccomp mode, ...) stays refused. */
      const scmp_datum_t opt[] = {PR_SET_NAME};
      r = add_args(b, "prctl", 0, SCMP_CMP_EQ, opt, 1, 0, err, errlen);
    } else {
      r = add_kind(b, gateway_extra[i].name, realm_seccomp_kind_for(gateway_extra[i].name), err,
                   errlen);
    }
  }
  /* socket(): only the families the runner endpoints use (ipc:// and tcp://). */
  const scmp_datum_t families[] = {AF_UNIX, AF_INET, AF_INET6};
  if (r == 0) r = add_args(b, "socket", 0, SCMP_CMP_EQ, families, 3, 0, err, errlen);
  /* ioctl(): FIONREAD only. glibc's DNS resolver sizes each UDP reply with it when libzmq's
   * I/O thread resolves a tcp://HOSTNAME runner endpoint (seen with strace; without it the
   * first reconnect to a named runner killed the gateway). */
  const scmp_datum_t ioctl_ops[] = {FIONREAD};
  if (r == 0) r = add_args(b, "ioctl", 1, SCMP_CMP_EQ, ioctl_ops, 1, 0, err, errlen);
  /* libzmq's threads read and re-apply their scheduling policy when they start
   * (sched_getparam/getscheduler, then sched_setscheduler with the same SCHED_OTHER);
   * changing to a real-time policy stays refused. */
  if (r == 0) r = add_kind(b, "sched_getparam", REALM_SECCOMP_ALLOW, err, errlen);
  if (r == 0) r = add_kind(b, "sched_getscheduler", REALM_SECCOMP_ALLOW, err, errlen);
  const scmp_datum_t sched_other[] = {SCHED_OTHER};
  if (r == 0)
    r = add_args(b, "sched_setscheduler", 1, SCMP_CMP_EQ, sched_other, 1, 0, err, errlen);
  /* openat(): read-only, for the SIGHUP reload of the tenants file (see the top comment). */
  const scmp_datum_t read_only[] = {0};
  if (r == 0)
    r = add_args(b, "openat", 2, SCMP_CMP_MASKED_EQ, read_only, 1, GW_OPEN_WRITE_FLAGS, err,
                 errlen);
  return r;
}

int gw_policy_export(int fd, char *err, size_t errlen) {
  struct builder b;
  int r = build(&b, err, errlen);
  if (r == 0 && seccomp_export_pfc(b.ctx, fd) != 0) {
    snprintf(err, errlen, "gateway policy: export failed");
    r = REALM_E_SYSTEM;
  }
  if (b.ctx) seccomp_release(b.ctx);
  return r;
}

const char *gw_policy_summary(void) {
  return "seccomp allowlist (kill-process default): sets basic-io, memory, time, signals, "
         "process, threads, zmq-io, exit; accept4, connect, setsockopt, getsockname, "
         "getpeername, rt_sigtimedwait; prctl(PR_SET_NAME) only; socket(AF_UNIX|AF_INET|"
         "AF_INET6) only; ioctl(FIONREAD) only; sched_setscheduler(SCHED_OTHER) only; openat "
         "read-only only (tenants reload). No execve, fork, ptrace, "
         "mount, bind/listen, exec-able memory";
}

int gw_jail(char *err, size_t errlen) {
  /* No ptrace attach by same-uid processes, no core file holding keys or prompts. */
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    snprintf(err, errlen, "prctl(PR_SET_DUMPABLE, 0): %s", strerror(errno));
    return REALM_E_SYSTEM;
  }
  struct rlimit core = {0, 0};
  if (setrlimit(RLIMIT_CORE, &core) != 0) {
    snprintf(err, errlen, "setrlimit(RLIMIT_CORE, 0): %s", strerror(errno));
    return REALM_E_SYSTEM;
  }
  /* Anything that formats local time would open /etc/localtime on first use: a POSIX TZ
   * string is parsed without touching the file system. */
  setenv("TZ", "UTC0", 1);
  tzset();
  /* glibc loads its NSS modules (dlopen: executable mappings, refused once jailed) the first
   * time a host name is resolved; resolving one now loads them for a tcp://host runner
   * endpoint later. Failure is fine: numeric endpoints need no resolver. */
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
  if (getaddrinfo("localhost", NULL, &hints, &ai) == 0) freeaddrinfo(ai);

  struct builder b;
  int r = build(&b, err, errlen);
  if (r == 0) {
    /* TSYNC: MHD's threads and libzmq's I/O and reaper threads get the filter at once.
     * libseccomp sets NO_NEW_PRIVS itself before loading (its default). */
    int rc = seccomp_attr_set(b.ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    if (rc == 0) rc = seccomp_load(b.ctx);
    if (rc != 0) {
      snprintf(err, errlen, "seccomp: loading the gateway filter: %s%s", strerror(-rc),
               rc == -ESRCH ? " (a thread could not be synchronised)" : "");
      r = REALM_E_SYSTEM;
    }
  }
  if (b.ctx) seccomp_release(b.ctx); /* free(3) only: munmap/brk/madvise are allowed */
  return r;
}
