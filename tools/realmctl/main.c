/*
 * main.c — realmctl, the operator CLI: dispatches the first argument to a verb family.
 * Verbs whose implementation file is not part of this build are reported as unavailable
 * (weak symbols), so the CLI builds while components land one at a time.
 */
#include "realmctl.h"

#include <stdio.h>
#include <string.h>

#pragma weak realmctl_cmd_model
#pragma weak realmctl_cmd_generate
#pragma weak realmctl_cmd_module
#pragma weak realmctl_cmd_tenant
#pragma weak realmctl_cmd_up

struct verb {
  const char *name;
  int (*fn)(int, char **);
  const char *help;
};

static void usage(FILE *out, const struct verb *verbs, size_t n) {
  fprintf(out, "usage: realmctl VERB [ARGS...]\n\nverbs:\n");
  for (size_t i = 0; i < n; i++)
    fprintf(out, "  %-10s %s%s\n", verbs[i].name, verbs[i].help,
            verbs[i].fn ? "" : " (not in this build)");
  fprintf(out, "\nrealmctl VERB --help shows a verb's options.\n");
}

int main(int argc, char **argv) {
  const struct verb verbs[] = {
      {"model", realmctl_cmd_model, "inspect or synthesize GGUF models"},
      {"generate", realmctl_cmd_generate, "run the engine in-process and print tokens"},
      {"module", realmctl_cmd_module, "validate and compile a tenant WebAssembly module"},
      {"tenant", realmctl_cmd_tenant, "add, list, rotate keys of, remove tenants"},
      {"up", realmctl_cmd_up, "run worker, runners and gateway on this machine, supervised"},
  };
  const size_t n = sizeof verbs / sizeof verbs[0];
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    usage(argc < 2 ? stderr : stdout, verbs, n);
    return argc < 2 ? 2 : 0;
  }
  for (size_t i = 0; i < n; i++) {
    if (strcmp(argv[1], verbs[i].name) != 0) continue;
    if (!verbs[i].fn) {
      fprintf(stderr, "realmctl: verb '%s' is not part of this build\n", argv[1]);
      return 2;
    }
    return verbs[i].fn(argc - 1, argv + 1);
  }
  fprintf(stderr, "realmctl: unknown verb '%s'\n", argv[1]);
  usage(stderr, verbs, n);
  return 2;
}
