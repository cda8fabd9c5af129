/*
 * test_seccomp_roles.c — the declarative role tables and argument rules of common/seccomp
 * (realm_seccomp_allow_arg, realm_seccomp_role_build/install/export), proven in forked
 * children: an argument rule lets exactly the listed values through and kills the rest, a
 * masked rule refuses any forbidden bit, and the builder refuses tables that would widen a
 * fixed constraint or contradict themselves, naming the role and the entry.
 *
 * It lives in tests/fault (suite 'security') because tests/unit/common belongs to common's
 * test owner; it can move next to test_seccomp.c unchanged.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "realm/error.h"
#include "realm/seccomp.h"
#include "realm_test.h"

/* A small role: what a forked child needs to say something and exit, plus the rules under
 * test (socket by family, openat read-only). */
static const struct realm_seccomp_entry child_rules[] = {
    REALM_SECCOMP_SET("basic-io", "write the verdict to the pipe"),
    REALM_SECCOMP_SET("memory", "malloc"),
    REALM_SECCOMP_SET("exit", "_exit"),
    REALM_SECCOMP_ARG_EQ("socket", 0, "unix and inet only", AF_UNIX, AF_INET),
    REALM_SECCOMP_ARG_MASKED_EQ("openat", 2, O_WRONLY | O_RDWR | O_CREAT | O_TRUNC,
                                "read-only opens", 0),
};
static const struct realm_seccomp_role child_role = REALM_SECCOMP_ROLE("child", child_rules);

static int verdict[2];

/* Forks; the child installs child_role, writes "jailed;", runs body and exits 0. Returns the
 * raw wait status (the child's words are read with said()). */
static int run_child(void (*body)(void)) {
  if (pipe(verdict) != 0) return -1;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    close(verdict[0]);
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    char err[256];
    if (realm_seccomp_role_install(&child_role, err, sizeof err) != REALM_OK) _exit(90);
    (void)!write(verdict[1], "jailed;", 7);
    body();
    _exit(0);
  }
  close(verdict[1]);
  int st = 0;
  if (waitpid(pid, &st, 0) != pid) return -1;
  return st;
}

static const char *said(void) {
  static char buf[128];
  ssize_t n = read(verdict[0], buf, sizeof buf - 1);
  close(verdict[0]);
  buf[n > 0 ? n : 0] = 0;
  return buf;
}

static void say(const char *s) { (void)!write(verdict[1], s, strlen(s)); }

static void body_allowed(void) {
  int u = (int)syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0);
  int i = (int)syscall(SYS_socket, AF_INET, SOCK_DGRAM, 0);
  int r = (int)syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY | O_CLOEXEC);
  if (u >= 0 && i >= 0 && r >= 0) say("allowed-ok");
}

static void body_netlink(void) {
  syscall(SYS_socket, AF_NETLINK, SOCK_RAW, 0); /* not a listed family: must kill us */
  say("survived");
}

static void body_open_for_writing(void) {
  syscall(SYS_openat, AT_FDCWD, "/dev/null", O_WRONLY | O_CLOEXEC); /* forbidden bit */
  say("survived");
}

#define CHECK_SIGSYS(st)                                                                     \
  do {                                                                                       \
    if (WIFEXITED(st)) printf("# child exited with %d instead of dying\n", WEXITSTATUS(st)); \
    CHECK(WIFSIGNALED(st));                                                                  \
    CHECK_EQ_INT(WTERMSIG(st), SIGSYS);                                                      \
  } while (0)

TEST(argument_rules_let_listed_values_through) {
  if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0) SKIP("kernel without seccomp");
  int st = run_child(body_allowed);
  CHECK_STR_EQ(said(), "jailed;allowed-ok");
  CHECK(WIFEXITED(st));
  CHECK_EQ_INT(WEXITSTATUS(st), 0);
}

TEST(argument_rule_kills_an_unlisted_value) {
  if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0) SKIP("kernel without seccomp");
  int st = run_child(body_netlink);
  CHECK_STR_EQ(said(), "jailed;");
  CHECK_SIGSYS(st);
}

TEST(masked_rule_kills_a_forbidden_bit) {
  if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0) SKIP("kernel without seccomp");
  int st = run_child(body_open_for_writing);
  CHECK_STR_EQ(said(), "jailed;");
  CHECK_SIGSYS(st);
}

TEST(builder_refuses_widening_and_contradictions) {
  char err[256] = "";
  realm_seccomp_policy *p = NULL;
  CHECK_EQ_INT(realm_seccomp_policy_new(&p, err, sizeof err), REALM_OK);
  const uint64_t v[] = {0, 1};
  /* mmap always carries "no PROT_EXEC": an argument rule could only widen it. */
  CHECK_EQ_INT(realm_seccomp_allow_arg(p, "mmap", 2, REALM_SECCOMP_ARG_EQ, 0, v, 1, err,
                                       sizeof err), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "mmap");
  CHECK_EQ_INT(realm_seccomp_allow_arg(p, "clone", 0, REALM_SECCOMP_ARG_EQ, 0, v, 1, err,
                                       sizeof err), REALM_E_INVALID_ARGUMENT);
  /* Bare first, then an argument rule: the rule would be dead. And the other way round. */
  CHECK_EQ_INT(realm_seccomp_allow(p, "ioctl", err, sizeof err), REALM_OK);
  CHECK_EQ_INT(realm_seccomp_allow_arg(p, "ioctl", 1, REALM_SECCOMP_ARG_EQ, 0, v, 1, err,
                                       sizeof err), REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "ioctl");
  CHECK_EQ_INT(realm_seccomp_allow_arg(p, "socket", 0, REALM_SECCOMP_ARG_EQ, 0, v, 2, err,
                                       sizeof err), REALM_OK);
  CHECK_EQ_INT(realm_seccomp_allow_arg(p, "socket", 0, REALM_SECCOMP_ARG_EQ, 0, v + 1, 1, err,
                                       sizeof err), REALM_OK); /* more alternatives: fine */
  CHECK_EQ_INT(realm_seccomp_allow(p, "socket", err, sizeof err), REALM_E_INVALID_ARGUMENT);
  /* Malformed rules and unknown names. */
  CHECK_EQ_INT(realm_seccomp_allow_arg(p, "prctl", 6, REALM_SECCOMP_ARG_EQ, 0, v, 1, err,
                                       sizeof err), REALM_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(realm_seccomp_allow_arg(p, "prctl", 0, REALM_SECCOMP_ARG_EQ, 0, v, 0, err,
                                       sizeof err), REALM_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(realm_seccomp_allow_arg(p, "no_such_call", 0, REALM_SECCOMP_ARG_EQ, 0, v, 1, err,
                                       sizeof err), REALM_E_NOT_FOUND);
  realm_seccomp_policy_free(p);
}

TEST(role_errors_name_the_role_and_the_entry) {
  static const struct realm_seccomp_entry bad[] = {
      REALM_SECCOMP_SET("basic-io", "fine"),
      REALM_SECCOMP_SYSCALL("frobnicate", "not a syscall"),
  };
  static const struct realm_seccomp_role bad_role = REALM_SECCOMP_ROLE("testrole", bad);
  char err[256] = "";
  realm_seccomp_policy *p = NULL;
  CHECK_EQ_INT(realm_seccomp_role_build(&bad_role, &p, err, sizeof err), REALM_E_NOT_FOUND);
  CHECK(p == NULL); /* untouched on failure */
  CHECK_STR_CONTAINS(err, "testrole policy, entry 1 ('frobnicate')");
  static const struct realm_seccomp_entry no_reason[] = {REALM_SECCOMP_SYSCALL("read", "")};
  static const struct realm_seccomp_role nr_role = REALM_SECCOMP_ROLE("nr", no_reason);
  CHECK_EQ_INT(realm_seccomp_role_build(&nr_role, &p, err, sizeof err),
               REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "no reason");
}

TEST(role_export_shows_the_argument_rules) {
  char path[] = "/tmp/realm-roles-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  unlink(path);
  char err[256] = "";
  CHECK_EQ_INT(realm_seccomp_role_export(&child_role, fd, err, sizeof err), REALM_OK);
  char buf[16384];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  close(fd);
  CHECK(n > 0);
  buf[n] = 0;
  CHECK_STR_CONTAINS(buf, "\"socket\"");
  CHECK_STR_CONTAINS(buf, "\"openat\"");
  CHECK_STR_CONTAINS(buf, "$a0.lo32 == 2"); /* AF_INET listed */
  CHECK(strstr(buf, "\"connect\"") == NULL); /* nothing beyond the table */
}
