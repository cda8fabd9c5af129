/*
 * test_seccomp.c — the allowlist helper, proven in forked children: a jailed child that calls
 * openat, makes executable memory, forks or signals another process dies with SIGSYS; one
 * that only does allowed things (I/O on a pipe, malloc, threads) exits 0; TSYNC jails threads
 * that already exist. The parent never installs a filter. Children disable core dumps so a
 * SIGSYS does not write a core file into the build tree.
 */
#include "realm/seccomp.h"
#include "realm_test.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Sanitizer runtimes (ASan/LSan/UBSan) make their own system calls at thread start and exit
 * (sigaltstack, pthread_getattr_np's helpers, ...), outside the deliberately minimal test
 * allowlists below. The tests that prove allowed work survives the jail skip in such builds;
 * the tests that prove forbidden calls die still run. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define REALM_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define REALM_TEST_SANITIZED 1
#endif
#endif

/* Exit codes a child uses to report set-up failures (distinct from a SIGSYS death). */
enum { CHILD_POLICY_FAILED = 90, CHILD_INSTALL_FAILED = 91, CHILD_UNEXPECTED = 92 };

static int result_pipe[2];

/* Installs a policy made of the given NULL-terminated set list plus extra syscalls. Exits the
 * child with a set-up code on failure. */
static void child_jail(const char *const *sets, const char *const *extra) {
  char err[256];
  realm_seccomp_policy *p = NULL;
  if (realm_seccomp_policy_new(&p, err, sizeof err) != REALM_OK) _exit(CHILD_POLICY_FAILED);
  for (; sets && *sets; sets++)
    if (realm_seccomp_allow_set(p, *sets, err, sizeof err) != REALM_OK) _exit(CHILD_POLICY_FAILED);
  for (; extra && *extra; extra++)
    if (realm_seccomp_allow(p, *extra, err, sizeof err) != REALM_OK) _exit(CHILD_POLICY_FAILED);
  if (realm_seccomp_install(p, err, sizeof err) != REALM_OK) {
    (void)!write(2, err, strlen(err));
    _exit(CHILD_INSTALL_FAILED);
  }
  realm_seccomp_policy_free(p);
}

static const char *const base_sets[] = {"basic-io", "memory", "exit", NULL};

/* Forks, runs body in the child (which must _exit), returns the wait status; -1 on failure. */
static int run_child(void (*body)(void)) {
  if (pipe(result_pipe) != 0) return -1;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    close(result_pipe[0]);
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    body();
    _exit(CHILD_UNEXPECTED);
  }
  close(result_pipe[1]);
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) status = -1;
  return status;
}

/* What the child wrote to the result pipe before it exited or died. */
static const char *child_said(void) {
  static char buf[128];
  ssize_t n = read(result_pipe[0], buf, sizeof buf - 1);
  close(result_pipe[0]);
  buf[n > 0 ? n : 0] = 0;
  return buf;
}

static void say(const char *s) { (void)!write(result_pipe[1], s, strlen(s)); }

static bool seccomp_available(void) { return prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0; }

#define CHECK_KILLED_BY_SIGSYS(status)                                   \
  do {                                                                   \
    if (WIFEXITED(status))                                               \
      printf("# child exited with %d instead of dying\n", WEXITSTATUS(status)); \
    CHECK(WIFSIGNALED(status));                                          \
    CHECK_EQ_INT(WTERMSIG(status), SIGSYS);                              \
  } while (0)

/* ---- children ---- */

static void body_openat(void) {
  child_jail(base_sets, NULL);
  say("jailed;");
  syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY); /* must kill us */
  say("survived");
  _exit(0);
}

static void body_exec_mprotect(void) {
  child_jail(base_sets, NULL);
  char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) _exit(CHILD_UNEXPECTED);
  if (mprotect(page, 4096, PROT_READ) != 0) _exit(CHILD_UNEXPECTED); /* allowed: no exec */
  say("ro-ok;");
  mprotect(page, 4096, PROT_READ | PROT_EXEC); /* must kill us */
  say("survived");
  _exit(0);
}

static void body_exec_mmap(void) {
  child_jail(base_sets, NULL);
  say("jailed;");
  mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  say("survived");
  _exit(0);
}

static void body_allowed_only(void) {
  child_jail(base_sets, NULL);
  void *big = malloc(8 << 20); /* mmap + munmap underneath */
  if (!big) _exit(CHILD_UNEXPECTED);
  memset(big, 1, 8 << 20);
  free(big);
  char *small = malloc(100);
  if (!small) _exit(CHILD_UNEXPECTED);
  free(small);
  say("ok");
  _exit(0);
}

static void *thread_main(void *arg) {
  *(int *)arg = 42;
  return NULL;
}

static void body_threads(void) {
  static const char *const sets[] = {"basic-io", "memory", "threads", "signals", "exit", NULL};
  child_jail(sets, NULL);
  pthread_t t;
  int value = 0;
  if (pthread_create(&t, NULL, thread_main, &value) != 0) _exit(CHILD_UNEXPECTED);
  if (pthread_join(t, NULL) != 0 || value != 42) _exit(CHILD_UNEXPECTED);
  say("thread-ok");
  _exit(0);
}

static void body_fork(void) {
  static const char *const sets[] = {"basic-io", "memory", "threads", "signals", "exit", NULL};
  child_jail(sets, NULL);
  say("jailed;");
  pid_t pid = fork(); /* clone without CLONE_THREAD: must kill us */
  if (pid == 0) _exit(0);
  say("survived");
  _exit(0);
}

static int tsync_pipe[2];

static void *tsync_thread(void *arg) {
  (void)arg;
  char c;
  if (read(tsync_pipe[0], &c, 1) != 1) return NULL; /* wait until the main thread jailed us */
  syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY); /* this thread must be jailed too */
  say("survived");
  _exit(0);
}

static void body_tsync(void) {
  static const char *const sets[] = {"basic-io", "memory", "threads", "signals", "exit", NULL};
  if (pipe(tsync_pipe) != 0) _exit(CHILD_UNEXPECTED);
  pthread_t t;
  if (pthread_create(&t, NULL, tsync_thread, NULL) != 0) _exit(CHILD_UNEXPECTED);
  child_jail(sets, NULL);
  say("jailed;");
  (void)!write(tsync_pipe[1], "go", 1);
  pthread_join(t, NULL);
  _exit(0);
}

static void body_kill_other(void) {
  static const char *const sets[] = {"basic-io", "memory", "signals", "exit", NULL};
  static const char *const extra[] = {"kill", "getppid", NULL};
  child_jail(sets, extra);
  if (kill(getpid(), 0) != 0) _exit(CHILD_UNEXPECTED); /* own pid: allowed */
  say("self-ok;");
  kill(getppid(), 0); /* another process: must kill us */
  say("survived");
  _exit(0);
}

/* ---- tests ---- */

TEST(seccomp_openat_dies_with_sigsys) {
  if (!seccomp_available()) SKIP("kernel without seccomp");
  int status = run_child(body_openat);
  CHECK_STR_EQ(child_said(), "jailed;");
  CHECK_KILLED_BY_SIGSYS(status);
}

TEST(seccomp_exec_mprotect_dies_but_plain_mprotect_works) {
  if (!seccomp_available()) SKIP("kernel without seccomp");
  int status = run_child(body_exec_mprotect);
  CHECK_STR_EQ(child_said(), "ro-ok;");
  CHECK_KILLED_BY_SIGSYS(status);
}

TEST(seccomp_exec_mmap_dies) {
  if (!seccomp_available()) SKIP("kernel without seccomp");
  int status = run_child(body_exec_mmap);
  CHECK_STR_EQ(child_said(), "jailed;");
  CHECK_KILLED_BY_SIGSYS(status);
}

TEST(seccomp_allowed_calls_exit_zero) {
  if (!seccomp_available()) SKIP("kernel without seccomp");
#ifdef REALM_TEST_SANITIZED
  SKIP("sanitizer runtime makes syscalls outside the minimal test allowlist");
#endif
  int status = run_child(body_allowed_only);
  CHECK_STR_EQ(child_said(), "ok");
  CHECK(WIFEXITED(status));
  CHECK_EQ_INT(WEXITSTATUS(status), 0);
}

TEST(seccomp_threads_work_under_jail) {
  if (!seccomp_available()) SKIP("kernel without seccomp");
#ifdef REALM_TEST_SANITIZED
  SKIP("sanitizer runtime makes syscalls outside the minimal test allowlist");
#endif
  int status = run_child(body_threads);
  CHECK_STR_EQ(child_said(), "thread-ok");
  CHECK(WIFEXITED(status));
  CHECK_EQ_INT(WEXITSTATUS(status), 0);
}

TEST(seccomp_fork_dies_with_sigsys) {
  if (!seccomp_available()) SKIP("kernel without seccomp");
  int status = run_child(body_fork);
  CHECK_STR_EQ(child_said(), "jailed;");
  CHECK_KILLED_BY_SIGSYS(status);
}

TEST(seccomp_tsync_jails_existing_threads) {
  if (!seccomp_available()) SKIP("kernel without seccomp");
  int status = run_child(body_tsync);
  CHECK_STR_EQ(child_said(), "jailed;");
  CHECK_KILLED_BY_SIGSYS(status);
}

TEST(seccomp_kill_only_own_pid) {
  if (!seccomp_available()) SKIP("kernel without seccomp");
  int status = run_child(body_kill_other);
  CHECK_STR_EQ(child_said(), "self-ok;");
  CHECK_KILLED_BY_SIGSYS(status);
}

TEST(seccomp_unknown_names_are_clean_errors) {
  char err[256] = "";
  realm_seccomp_policy *p = NULL;
  CHECK_EQ_INT(realm_seccomp_policy_new(&p, err, sizeof err), REALM_OK);
  CHECK_EQ_INT(realm_seccomp_allow(p, "no_such_syscall", err, sizeof err), REALM_E_NOT_FOUND);
  CHECK_STR_CONTAINS(err, "unknown syscall 'no_such_syscall'");
  CHECK_EQ_INT(realm_seccomp_allow_set(p, "everything", err, sizeof err), REALM_E_NOT_FOUND);
  CHECK_STR_CONTAINS(err, "unknown syscall set 'everything'");
  CHECK_EQ_INT(realm_seccomp_allow(p, "read", err, sizeof err), REALM_OK);
  CHECK_EQ_INT(realm_seccomp_allow(p, "read", err, sizeof err), REALM_OK); /* duplicate: no-op */
  CHECK_EQ_INT(realm_seccomp_allow_set(p, "memory", err, sizeof err), REALM_OK);
  CHECK_EQ_INT(realm_seccomp_allow(p, "mprotect", err, sizeof err), REALM_OK);
  realm_seccomp_policy_free(p);
  realm_seccomp_policy_free(NULL);
}

TEST(seccomp_policy_from_another_process_is_refused) {
  char err[256] = "";
  realm_seccomp_policy *p = NULL;
  CHECK_EQ_INT(realm_seccomp_policy_new(&p, err, sizeof err), REALM_OK);
  CHECK_EQ_INT(realm_seccomp_allow_set(p, "signals", err, sizeof err), REALM_OK);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    char cerr[256];
    int rc = realm_seccomp_install(p, cerr, sizeof cerr);
    _exit(rc == REALM_E_INVALID_ARGUMENT && strstr(cerr, "built in process") ? 0 : 1);
  }
  int status = 0;
  CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
  CHECK(WIFEXITED(status));
  CHECK_EQ_INT(WEXITSTATUS(status), 0);
  realm_seccomp_policy_free(p);
}

TEST(seccomp_export_shows_constraints) {
  char err[256] = "";
  realm_seccomp_policy *p = NULL;
  CHECK_EQ_INT(realm_seccomp_policy_new(&p, err, sizeof err), REALM_OK);
  CHECK_EQ_INT(realm_seccomp_allow_set(p, "memory", err, sizeof err), REALM_OK);
  FILE *f = tmpfile();
  CHECK(f != NULL);
  CHECK_EQ_INT(realm_seccomp_export_pfc(p, fileno(f), err, sizeof err), REALM_OK);
  static char text[65536];
  rewind(f);
  size_t n = fread(text, 1, sizeof text - 1, f);
  text[n] = 0;
  fclose(f);
  CHECK_STR_CONTAINS(text, "mprotect");
  CHECK_STR_CONTAINS(text, "& 0x00000004"); /* the masked PROT_EXEC comparison */
  CHECK_STR_CONTAINS(text, "action KILL_PROCESS");
  realm_seccomp_policy_free(p);
}

TEST(seccomp_sets_are_well_formed) {
  CHECK(realm_seccomp_set_count() >= 8);
  CHECK(realm_seccomp_set_at(realm_seccomp_set_count()) == NULL);
  for (size_t i = 0; i < realm_seccomp_set_count(); i++) {
    const struct realm_seccomp_set *s = realm_seccomp_set_at(i);
    CHECK(s && s->name && s->purpose && s->n_rules > 0);
    CHECK(realm_seccomp_find_set(s->name) == s);
    for (size_t j = 0; j < s->n_rules; j++) {
      const struct realm_seccomp_rule *r = &s->rules[j];
      if (!(r->why && strlen(r->why) > 10)) printf("# %s/%s: no reason\n", s->name, r->syscall);
      CHECK(r->why && strlen(r->why) > 10);
      /* a typo would silently drop a syscall from the set: every name must exist somewhere */
      bool known = seccomp_syscall_resolve_name_arch(SCMP_ARCH_X86_64, r->syscall) >= 0 ||
                   seccomp_syscall_resolve_name_arch(SCMP_ARCH_AARCH64, r->syscall) >= 0;
      if (!known) printf("# %s/%s: unknown syscall\n", s->name, r->syscall);
      CHECK(known);
      /* a constrained syscall must carry its constraint in every set */
      if (r->kind != realm_seccomp_kind_for(r->syscall))
        printf("# %s/%s: kind differs from the global constraint\n", s->name, r->syscall);
      CHECK_EQ_INT(r->kind, realm_seccomp_kind_for(r->syscall));
    }
  }
  const struct realm_seccomp_set *mem = realm_seccomp_find_set("memory");
  CHECK(mem != NULL);
  bool has_mmap = false;
  for (size_t j = 0; j < mem->n_rules; j++)
    if (strcmp(mem->rules[j].syscall, "mmap") == 0) {
      has_mmap = true;
      CHECK_EQ_INT(mem->rules[j].kind, REALM_SECCOMP_ALLOW_NO_EXEC);
    }
  CHECK(has_mmap);
  CHECK(realm_seccomp_find_set("nope") == NULL);
  CHECK_STR_EQ(realm_seccomp_kind_name(REALM_SECCOMP_ALLOW_NO_EXEC), "allow without PROT_EXEC");
}
