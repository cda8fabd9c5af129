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
 * One filter, described by the table below and built by the common role builder
 * (common/src/seccomp.c), which applies each set entry's constraint kind (mmap/mprotect
 * without PROT_EXEC, clone with CLONE_THREAD, tgkill/kill on our own pid, clone3 → ENOSYS)
 * and the gateway's argument rules (socket by family, openat by flags, ioctl FIONREAD,
 * prctl PR_SET_NAME, sched_setscheduler SCHED_OTHER) in one filter: a second, stacked filter
 * would have to leave prctl and seccomp() open between the two installs.
 */
#include "policy.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "realm/error.h"
#include "realm/seccomp.h"

/* openat flags that would write, create or truncate (refused by the openat rule). */
/* O_TMPFILE includes O_DIRECTORY's bit; only its own bit is refused, so directories open. */
#define GW_OPEN_WRITE_FLAGS \
  (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND | (O_TMPFILE & ~O_DIRECTORY))

/* The gateway's allowlist, in the order it is built: named sets first (each rule's reason is
 * in common/src/seccomp.c), then single syscalls and argument-constrained ones. */
static const struct realm_seccomp_entry gateway_rules[] = {
    REALM_SECCOMP_SET("basic-io", "read/write/close on sockets and eventfds; stderr logging"),
    REALM_SECCOMP_SET("memory", "malloc; mmap/mprotect never with PROT_EXEC"),
    REALM_SECCOMP_SET("time", "clocks for deadlines, rate limiters and log timestamps; timerfds"),
    REALM_SECCOMP_SET("signals", "signal masks, abort() on our own pid"),
    REALM_SECCOMP_SET("process", "own ids, getrandom (request ids, completion ids), sched_yield"),
    REALM_SECCOMP_SET("threads", "MHD's thread per connection; clone only with CLONE_THREAD"),
    REALM_SECCOMP_SET("zmq-io", "libzmq's I/O thread and zmq_poll: epoll, poll, send/recv, "
                                "eventfd2"),
    REALM_SECCOMP_SET("exit", "exit and exit_group"),
    REALM_SECCOMP_SYSCALL("accept4", "MHD accepts client connections on the listener bound "
                                     "before the jail"),
    REALM_SECCOMP_SYSCALL("connect", "libzmq reconnects to a restarted runner and connects to "
                                     "replicas added by a reload (the socket itself is checked "
                                     "by domain)"),
    REALM_SECCOMP_SYSCALL("setsockopt", "MHD and libzmq tune new connections (TCP_NODELAY, "
                                        "buffer sizes, keep-alive)"),
    REALM_SECCOMP_SYSCALL("getsockname", "libzmq names a connection's local address for its "
                                         "monitor events"),
    REALM_SECCOMP_SYSCALL("getpeername", "libzmq and MHD name a connection's peer"),
    REALM_SECCOMP_SYSCALL("rt_sigtimedwait", "the main thread takes SIGHUP/SIGTERM/SIGINT with "
                                             "sigwait()"),
    /* Naming the calling thread is all MHD and libzmq do; anything else (NO_NEW_PRIVS is
     * already set, dumpable, seccomp mode, ...) stays refused. */
    REALM_SECCOMP_ARG_EQ("prctl", 0, "MHD and libzmq name their new threads (PR_SET_NAME); "
                                     "only that option", PR_SET_NAME),
    REALM_SECCOMP_ARG_EQ("socket", 0, "only the families the runner endpoints use (ipc:// and "
                                      "tcp://)", AF_UNIX, AF_INET, AF_INET6),
    /* glibc's DNS resolver sizes each UDP reply with FIONREAD when libzmq's I/O thread
     * resolves a tcp://HOSTNAME runner endpoint (seen with strace; without it the first
     * reconnect to a named runner killed the gateway). */
    REALM_SECCOMP_ARG_EQ("ioctl", 1, "FIONREAD only: the resolver sizes a UDP reply",
                         FIONREAD),
    /* libzmq's threads read and re-apply their scheduling policy when they start
     * (sched_getparam/getscheduler, then sched_setscheduler with the same SCHED_OTHER);
     * changing to a real-time policy stays refused. */
    REALM_SECCOMP_SYSCALL("sched_getparam", "libzmq's thread start reads its priority"),
    REALM_SECCOMP_SYSCALL("sched_getscheduler", "libzmq's thread start reads its policy"),
    REALM_SECCOMP_ARG_EQ("sched_setscheduler", 1, "libzmq re-applies SCHED_OTHER; no real-time "
                                                  "policy", SCHED_OTHER),
    REALM_SECCOMP_ARG_MASKED_EQ("openat", 2, GW_OPEN_WRITE_FLAGS, "read-only, for the SIGHUP "
                                "reload of the tenants file (see the top comment)", 0),
};

static const struct realm_seccomp_role gateway_role = REALM_SECCOMP_ROLE("gateway", gateway_rules);

int gw_policy_export(int fd, char *err, size_t errlen) {
  return realm_seccomp_role_export(&gateway_role, fd, err, errlen);
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

  /* TSYNC: MHD's threads and libzmq's I/O and reaper threads get the filter at once. */
  return realm_seccomp_role_install(&gateway_role, err, errlen);
}
