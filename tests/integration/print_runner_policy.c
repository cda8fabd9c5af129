/*
 * print_runner_policy.c — prints realm-runner's in-process seccomp filter (libseccomp pseudo
 * filter code) on stdout, the way `realm-gateway --print-policy` and `realm-worker
 * --print-policy` print theirs. realm-runner has no such flag; this test helper calls the same
 * runner_policy_export() the runner's jail is built by, so tests/integration/check_deploy.py
 * can check that deploy/seccomp/runner.json (the container layer) allows everything the
 * process layer allows. Never installed.
 */
#include <stdio.h>
#include <unistd.h>

#include "runner.h"

int main(void) {
  char err[256] = "";
  if (runner_policy_export(STDOUT_FILENO, err, sizeof err) < 0) {
    fprintf(stderr, "print-runner-policy: %s\n", err);
    return 1;
  }
  return 0;
}
