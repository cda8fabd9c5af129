/*
 * cmd_module.c — `realmctl module build IN.wasm [--cache DIR] [--check]`: runs the sandbox's
 * module pipeline offline (size limit, wasm2c validation and translation, ABI conformance of
 * the import/export sets, C compile into the SHA-256-keyed cache) and prints the module's
 * SHA-256 and the cached .so path, so an operator can vet and pre-compile a tenant module
 * before a runner loads it. --check also loads and instantiates it with default limits and
 * checks realm_abi_version(). Exit status: 0 on success, 1 with the message on failure, 2 on
 * bad usage.
 */
#include "realmctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#if __has_include("sandbox.h")
#include "sandbox.h"
#define HAVE_SANDBOX 1
#else
#define HAVE_SANDBOX 0 /* wasm2c missing at configure time: the verb reports it */
#endif

#define DEFAULT_CACHE "realm-module-cache"
#define REALMCTL_GUEST_ABI 1 /* REALM_GUEST_ABI_VERSION; repeated so usage works without the sandbox */

static void module_usage(FILE *out) {
  fprintf(out,
          "usage: realmctl module build IN.wasm [--cache DIR] [--check]\n"
          "  Validates IN.wasm against guest ABI v%d, translates it with wasm2c, compiles it\n"
          "  into DIR (default ./%s, created if missing) and prints its SHA-256 and .so path.\n"
          "  --check  also load and instantiate it with default limits\n",
          REALMCTL_GUEST_ABI, DEFAULT_CACHE);
}

int realmctl_cmd_module(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    module_usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (strcmp(argv[1], "build") != 0) {
    fprintf(stderr, "realmctl module: unknown subcommand '%s'\n", argv[1]);
    module_usage(stderr);
    return 2;
  }
  const char *in = NULL, *cache = DEFAULT_CACHE;
  int check = 0;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--cache") == 0 && i + 1 < argc) {
      cache = argv[++i];
    } else if (strcmp(argv[i], "--check") == 0) {
      check = 1;
    } else if (argv[i][0] != '-' && !in) {
      in = argv[i];
    } else {
      fprintf(stderr, "realmctl module build: unexpected argument '%s'\n", argv[i]);
      module_usage(stderr);
      return 2;
    }
  }
  if (!in) {
    module_usage(stderr);
    return 2;
  }
#if HAVE_SANDBOX
  _Static_assert(REALMCTL_GUEST_ABI == REALM_GUEST_ABI_VERSION, "update REALMCTL_GUEST_ABI");
  if (mkdir(cache, 0700) != 0 && errno != EEXIST) {
    fprintf(stderr, "realmctl module build: cannot create cache dir '%s': %s\n", cache,
            strerror(errno));
    return 1;
  }
  char err[2048] = "";
  struct sandbox_module *m = NULL;
  int rc = sandbox_module_load_file(in, cache, &m, err, sizeof err);
  if (rc < 0) {
    fprintf(stderr, "realmctl module build: %s: %s\n", in, err);
    return 1;
  }
  if (check) {
    struct sandbox_instance *inst = NULL;
    rc = sandbox_instance_new(m, NULL, NULL, &inst, err, sizeof err);
    if (rc < 0) {
      fprintf(stderr, "realmctl module build: %s: %s\n", in, err);
      sandbox_module_free(m);
      return 1;
    }
    sandbox_instance_free(inst);
  }
  printf("sha256 %s\nso %s\ncached %s\n", sandbox_module_sha256(m), sandbox_module_so_path(m),
         sandbox_module_from_cache(m) ? "yes" : "no");
  if (check) printf("check ok (instantiated, ABI v%d)\n", REALMCTL_GUEST_ABI);
  sandbox_module_free(m);
  return 0;
#else
  (void)check;
  fprintf(stderr, "realmctl module build: this build has no sandbox (wasm2c was not found)\n");
  return 1;
#endif
}
