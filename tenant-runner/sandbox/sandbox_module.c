/*
 * sandbox_module.c — the module pipeline: wasm bytes -> validated C -> cached shared object ->
 * dlopen'ed module with a checked ABI.
 *
 * Steps (sandbox_module_build): size limit; magic check; SHA-256 of the bytes names the cache
 * entry "<sha256>-<tag>.so", where <tag> hashes everything else the .so depends on (wasm2c
 * runtime macros, shim version, ABI version), so a changed build never reuses a stale object.
 * On a miss, in a private temporary directory inside cache_dir: write the bytes, run wasm2c
 * (which validates the module: its message is returned on failure), check from the generated
 * header that the module imports only "realm" functions the host provides and exports the ABI's
 * functions and memory, generate a small shim (a fixed-name function table plus exact
 * prototypes of every export and import, so a wrong signature is a compile error), compile with
 * $CC/cc, and rename the .so into place (atomic: concurrent builders race harmlessly).
 * Children are run with fork/execvp and a fixed argv (no shell); their stderr is captured into
 * the error message.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "realm/error.h"
#include "realm/limits.h"
#include "sandbox_internal.h"

#define STR_(x) #x
#define STR(x) STR_(x)

/* The wasm2c runtime configuration the host was built with; the generated code MUST use the
 * same (one trap buffer, one stack depth counter, bounds-checked memory). */
static const char *const rt_defines[] = {
    "-DWASM_RT_MEMCHECK_SIGNAL_HANDLER=" STR(WASM_RT_MEMCHECK_SIGNAL_HANDLER),
    "-DWASM_RT_USE_STACK_DEPTH_COUNT=" STR(WASM_RT_USE_STACK_DEPTH_COUNT),
    "-DWASM_RT_MAX_CALL_STACK_DEPTH=" STR(WASM_RT_MAX_CALL_STACK_DEPTH),
};
#if WASM_RT_MEMCHECK_SIGNAL_HANDLER || !WASM_RT_USE_STACK_DEPTH_COUNT
#error "the sandbox must be built in bounds-check mode with a stack depth counter (meson.build)"
#endif

/* Every import the host provides, with its wasm2c C prototype (i32 -> u32, i64 -> u64,
 * f32 -> f32). The shim redeclares them; a guest importing one with another signature then
 * fails to compile, with the compiler naming the function. */
static const struct {
  const char *name;
  const char *proto;
} host_imports[] = {
    {"model_info", "u32 Z_realmZ_model_info(struct Z_realm_instance_t*, u32, u32);"},
    {"vocab_size", "u32 Z_realmZ_vocab_size(struct Z_realm_instance_t*);"},
    {"token_piece", "u32 Z_realmZ_token_piece(struct Z_realm_instance_t*, u32, u32, u32);"},
    {"token_info", "u32 Z_realmZ_token_info(struct Z_realm_instance_t*, u32, u32);"},
    {"feed_tokens", "u32 Z_realmZ_feed_tokens(struct Z_realm_instance_t*, u32, u32, u32);"},
    {"emit_text", "u32 Z_realmZ_emit_text(struct Z_realm_instance_t*, u32, u32, u32);"},
    {"emit_token", "u32 Z_realmZ_emit_token(struct Z_realm_instance_t*, u32, u32, f32, u32, u32);"},
    {"log", "void Z_realmZ_log(struct Z_realm_instance_t*, u32, u32, u32);"},
    {"now_ns", "u64 Z_realmZ_now_ns(struct Z_realm_instance_t*);"},
    {"random_bytes", "u32 Z_realmZ_random_bytes(struct Z_realm_instance_t*, u32, u32);"},
    {"matmul", "u32 Z_realmZ_matmul(struct Z_realm_instance_t*, u32, u32, u32, u32, u32, u32, u32);"},
    {"attention", "u32 Z_realmZ_attention(struct Z_realm_instance_t*, u32, u32, u32, u32, u32);"},
    /* added later to ABI v1 (docs/guest-abi.md, versioning rules) */
    {"model_meta", "u32 Z_realmZ_model_meta(struct Z_realm_instance_t*, u32, u32, u32, u32);"},
    {"merge_count", "u32 Z_realmZ_merge_count(struct Z_realm_instance_t*);"},
    {"merge", "u32 Z_realmZ_merge(struct Z_realm_instance_t*, u32, u32, u32);"},
    {"emit_top_logprobs", "u32 Z_realmZ_emit_top_logprobs(struct Z_realm_instance_t*, u32, u32, u32);"},
    {"finish", "u32 Z_realmZ_finish(struct Z_realm_instance_t*, u32, u32);"},
};

/* The exports of ABI v1, as C function-pointer types over the wasm2c instance struct. */
static const struct {
  const char *name;
  const char *type; /* declarator with %s for the variable name */
} guest_exports[] = {
    {"realm_abi_version", "u32 (*%s)(Z_guest_instance_t*)"},
    {"realm_alloc", "u32 (*%s)(Z_guest_instance_t*, u32)"},
    {"realm_on_request_begin", "u32 (*%s)(Z_guest_instance_t*, u32, u32, u32)"},
    {"realm_on_logits", "u32 (*%s)(Z_guest_instance_t*, u32, u32, u32)"},
    {"realm_on_request_end", "void (*%s)(Z_guest_instance_t*, u32, u32)"},
};

static void hex_encode(const uint8_t *in, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  out[2 * n] = '\0';
}

/* Short hash of the build configuration (see the file comment). */
static void build_tag(char out[17]) {
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  for (size_t i = 0; i < sizeof rt_defines / sizeof rt_defines[0]; i++)
    crypto_hash_sha256_update(&st, (const uint8_t *)rt_defines[i], strlen(rt_defines[i]) + 1);
  const char extra[] = "shim=" STR(SANDBOX_SHIM_VERSION) " abi=" STR(REALM_GUEST_ABI_VERSION)
                       " opt=-O2 wasm2c-1.0.32";
  crypto_hash_sha256_update(&st, (const uint8_t *)extra, sizeof extra);
  uint8_t h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&st, h);
  hex_encode(h, 8, out);
}

static int write_file(const char *path, const void *data, size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return -errno;
  const uint8_t *p = data;
  while (len) {
    ssize_t w = write(fd, p, len);
    if (w < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      return -e;
    }
    p += w;
    len -= (size_t)w;
  }
  if (close(fd) != 0) return -errno;
  return 0;
}

/* Reads a whole file (up to max bytes) into a malloc'ed NUL-terminated buffer. Returns 0 or
 * a negative errno (-EFBIG when over max). */
static int read_file(const char *path, size_t max, char **ret_buf, size_t *ret_len) {
  FILE *f = fopen(path, "rbe");
  if (!f) return -errno;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap + 1);
  if (!buf) {
    fclose(f);
    return -ENOMEM;
  }
  for (;;) {
    if (n == cap) {
      if (cap > max) break;
      char *nb = realloc(buf, cap * 2 + 1);
      if (!nb) {
        free(buf);
        fclose(f);
        return -ENOMEM;
      }
      buf = nb;
      cap *= 2;
    }
    size_t r = fread(buf + n, 1, cap - n, f);
    if (r == 0) break;
    n += r;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return -EIO;
  }
  if (n > max) {
    free(buf);
    return -EFBIG;
  }
  buf[n] = '\0';
  *ret_buf = buf;
  *ret_len = n;
  return 0;
}

/*
 * Runs argv[0] (PATH lookup) with the fixed argv, stdin from /dev/null, stdout discarded and
 * stderr captured into out (cap bytes, truncated). Returns 0 when it exits with status 0,
 * REALM_E_INVALID_ARGUMENT when it fails (out holds its stderr), REALM_E_SYSTEM when it could
 * not run.
 */
static int run_tool(char *const argv[], char *out, size_t cap) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return REALM_E_SYSTEM;
  pid_t pid = fork();
  if (pid < 0) {
    close(pipefd[0]);
    close(pipefd[1]);
    return REALM_E_SYSTEM;
  }
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      dup2(devnull, 0);
      dup2(devnull, 1);
    }
    dup2(pipefd[1], 2);
    execvp(argv[0], argv);
    dprintf(2, "cannot run %s: %s", argv[0], strerror(errno));
    _exit(127);
  }
  close(pipefd[1]);
  size_t n = 0;
  char sink[512];
  for (;;) {
    char *dst = n + 1 < cap ? out + n : sink;
    size_t room = n + 1 < cap ? cap - 1 - n : sizeof sink;
    ssize_t r = read(pipefd[0], dst, room);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    if (dst != sink) n += (size_t)r;
  }
  close(pipefd[0]);
  if (cap) out[n < cap ? n : cap - 1] = '\0';
  /* Trim the trailing newline so the message embeds cleanly. */
  while (n > 0 && n < cap && (out[n - 1] == '\n' || out[n - 1] == ' ')) out[--n] = '\0';
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return REALM_E_SYSTEM;
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && strncmp(out, "cannot run", 10) == 0)
    return REALM_E_SYSTEM;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : REALM_E_INVALID_ARGUMENT;
}

static void remove_tree(const char *dir) {
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *e;
    char p[PATH_MAX];
    while ((e = readdir(d)) != NULL) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, e->d_name) < sizeof p) unlink(p);
    }
    closedir(d);
  }
  rmdir(dir);
}

/*
 * Checks the wasm2c header against the ABI: imports only from "realm" and only names the host
 * provides; exports memory and every required function. Returns 0 or INVALID_ARGUMENT.
 */
static int check_interface(const char *header, int *ret_imports_realm, char *err, size_t errlen) {
  int imports_realm = 0;
  for (const char *p = strstr(header, "/* import: '"); p; p = strstr(p + 1, "/* import: '")) {
    char mod[128] = "", name[128] = "";
    if (sscanf(p, "/* import: '%127[^']' '%127[^']'", mod, name) != 2) {
      realm_set_err(err, errlen, "module has an import wasm2c could not describe");
      return REALM_E_INVALID_ARGUMENT;
    }
    if (strcmp(mod, "realm") != 0) {
      realm_set_err(err, errlen,
                    "module imports '%s'.'%s': guests may import only module \"realm\" (ABI v%d)",
                    mod, name, REALM_GUEST_ABI_VERSION);
      return REALM_E_INVALID_ARGUMENT;
    }
    int known = 0;
    for (size_t i = 0; i < sizeof host_imports / sizeof host_imports[0]; i++)
      if (strcmp(name, host_imports[i].name) == 0) known = 1;
    if (!known) {
      realm_set_err(err, errlen,
                    "module imports 'realm'.'%s', which the host does not provide (ABI v%d)",
                    name, REALM_GUEST_ABI_VERSION);
      return REALM_E_INVALID_ARGUMENT;
    }
    imports_realm = 1;
  }
  if (!strstr(header, "/* export: 'memory' */")) {
    realm_set_err(err, errlen,
                  "module does not export its memory as \"memory\" (required by ABI v%d)",
                  REALM_GUEST_ABI_VERSION);
    return REALM_E_INVALID_ARGUMENT;
  }
  for (size_t i = 0; i < sizeof guest_exports / sizeof guest_exports[0]; i++) {
    char marker[160];
    snprintf(marker, sizeof marker, "/* export: '%s' */", guest_exports[i].name);
    if (!strstr(header, marker)) {
      realm_set_err(err, errlen, "module does not export function '%s' (required by ABI v%d)",
                    guest_exports[i].name, REALM_GUEST_ABI_VERSION);
      return REALM_E_INVALID_ARGUMENT;
    }
  }
  *ret_imports_realm = imports_realm;
  return 0;
}

/* Writes the shim C source (see the file comment) for a module named "guest". */
static int write_shim(const char *path, int imports_realm) {
  FILE *f = fopen(path, "we");
  if (!f) return -errno;
  fprintf(f, "/* generated by the Realm sandbox: fixed-name entry table for one guest */\n");
  fprintf(f, "#include <stddef.h>\n#include \"guest.h\"\n");
  fprintf(f, "struct Z_realm_instance_t;\n");
  for (size_t i = 0; i < sizeof host_imports / sizeof host_imports[0]; i++)
    fprintf(f, "%s\n", host_imports[i].proto);
  for (size_t i = 0; i < sizeof guest_exports / sizeof guest_exports[0]; i++) {
    char var[96];
    snprintf(var, sizeof var, "const check_%s", guest_exports[i].name);
    fprintf(f, "static __attribute__((unused)) ");
    fprintf(f, guest_exports[i].type, var);
    fprintf(f, " = Z_guestZ_%s;\n", guest_exports[i].name);
  }
  fprintf(f,
          "static void shim_instantiate(void *g, struct Z_realm_instance_t *h) {\n"
          "  %s\n}\n",
          imports_realm ? "Z_guest_instantiate(g, h);" : "(void)h; Z_guest_instantiate(g);");
  fprintf(f,
          "static void shim_free(void *g) { Z_guest_free(g); }\n"
          "static wasm_rt_memory_t *shim_memory(void *g) { return Z_guestZ_memory(g); }\n"
          "static u32 shim_abi(void *g) { return Z_guestZ_realm_abi_version(g); }\n"
          "static u32 shim_alloc(void *g, u32 n) { return Z_guestZ_realm_alloc(g, n); }\n"
          "static u32 shim_begin(void *g, u32 a, u32 b, u32 c) {\n"
          "  return Z_guestZ_realm_on_request_begin(g, a, b, c); }\n"
          "static u32 shim_logits(void *g, u32 a, u32 b, u32 c) {\n"
          "  return Z_guestZ_realm_on_logits(g, a, b, c); }\n"
          "static void shim_end(void *g, u32 a, u32 b) { Z_guestZ_realm_on_request_end(g, a, b); }\n"
          "struct shim {\n"
          "  u32 shim_version; u64 instance_bytes; void (*init_module)(void);\n"
          "  void (*instantiate)(void *, struct Z_realm_instance_t *);\n"
          "  void (*free_instance)(void *); wasm_rt_memory_t *(*memory)(void *);\n"
          "  u32 (*abi_version)(void *); u32 (*alloc)(void *, u32);\n"
          "  u32 (*on_request_begin)(void *, u32, u32, u32);\n"
          "  u32 (*on_logits)(void *, u32, u32, u32); void (*on_request_end)(void *, u32, u32);\n"
          "};\n"
          "__attribute__((visibility(\"default\"))) const struct shim realm_shim_v1 = {\n"
          "  %d, sizeof(Z_guest_instance_t), Z_guest_init_module, shim_instantiate, shim_free,\n"
          "  shim_memory, shim_abi, shim_alloc, shim_begin, shim_logits, shim_end };\n",
          SANDBOX_SHIM_VERSION);
  if (fclose(f) != 0) return -errno;
  return 0;
}

static const char *c_compiler(void) {
  const char *cc = getenv("CC");
  /* $CC with arguments ("ccache gcc") would need a shell to split; use plain cc then. */
  if (!cc || !*cc || strpbrk(cc, " \t")) cc = "cc";
  return cc;
}

int sandbox_module_build(const uint8_t *wasm, size_t len, const char *cache_dir,
                         char ret_sha256[65], char *ret_so_path, size_t so_path_cap,
                         int *ret_cached, char *err, size_t errlen) {
  if (!wasm || !cache_dir || !ret_sha256 || !ret_so_path || !ret_cached) {
    realm_set_err(err, errlen, "sandbox_module_build: NULL argument");
    return REALM_E_INVALID_ARGUMENT;
  }
  if (len > REALM_GUEST_MAX_MODULE_BYTES) {
    realm_set_err(err, errlen,
                  "module is %zu bytes, limit is %u (REALM_GUEST_MAX_MODULE_BYTES)", len,
                  (unsigned)REALM_GUEST_MAX_MODULE_BYTES);
    return REALM_E_TOO_LARGE;
  }
  if (len < 8 || memcmp(wasm, "\0asm", 4) != 0) {
    realm_set_err(err, errlen, "not a WebAssembly binary (missing \\0asm magic, %zu bytes)", len);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (sodium_init() < 0) {
    realm_set_err(err, errlen, "libsodium failed to initialise");
    return REALM_E_SYSTEM;
  }
  uint8_t digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, wasm, len);
  char sha[65], tag[17];
  hex_encode(digest, sizeof digest, sha);
  build_tag(tag);

  char so_path[PATH_MAX];
  if ((size_t)snprintf(so_path, sizeof so_path, "%s/%s-%s.so", cache_dir, sha, tag) >=
          sizeof so_path ||
      strlen(so_path) + 1 > so_path_cap) {
    realm_set_err(err, errlen, "cache path too long: cache_dir '%s'", cache_dir);
    return REALM_E_INVALID_ARGUMENT;
  }
  struct stat st;
  if (stat(so_path, &st) == 0 && S_ISREG(st.st_mode)) {
    memcpy(ret_sha256, sha, sizeof sha);
    memcpy(ret_so_path, so_path, strlen(so_path) + 1);
    *ret_cached = 1;
    return 0;
  }

  char tmpdir[PATH_MAX];
  if ((size_t)snprintf(tmpdir, sizeof tmpdir, "%s/.build-XXXXXX", cache_dir) >= sizeof tmpdir ||
      !mkdtemp(tmpdir)) {
    realm_set_err(err, errlen, "cannot create a build directory in cache dir '%s': %s", cache_dir,
                  strerror(errno));
    return REALM_E_IO;
  }
  char wasm_p[PATH_MAX + 16], c_p[PATH_MAX + 16], h_p[PATH_MAX + 16], shim_p[PATH_MAX + 16],
      so_tmp[PATH_MAX + 16];
  snprintf(wasm_p, sizeof wasm_p, "%s/guest.wasm", tmpdir);
  snprintf(c_p, sizeof c_p, "%s/guest.c", tmpdir);
  snprintf(h_p, sizeof h_p, "%s/guest.h", tmpdir);
  snprintf(shim_p, sizeof shim_p, "%s/shim.c", tmpdir);
  snprintf(so_tmp, sizeof so_tmp, "%s/guest.so", tmpdir);

  int rc = write_file(wasm_p, wasm, len);
  if (rc < 0) {
    realm_set_err(err, errlen, "cannot write '%s': %s", wasm_p, strerror(-rc));
    rc = REALM_E_IO;
    goto out;
  }

  /* 1. validate + translate. The module name is fixed ("guest"): every .so is dlopen'ed
   *    RTLD_LOCAL and entered through the shim table, so names never meet. */
  char tool_out[2048];
  char *w2c_argv[] = {"wasm2c", "--module-name=guest", "-o", c_p, wasm_p, NULL};
  rc = run_tool(w2c_argv, tool_out, sizeof tool_out);
  if (rc == REALM_E_SYSTEM) {
    realm_set_err(err, errlen, "cannot run wasm2c (is wabt installed?): %s", tool_out);
    goto out;
  }
  if (rc < 0) {
    realm_set_err(err, errlen, "invalid module (wasm2c): %s", tool_out);
    goto out;
  }

  /* 2. ABI conformance of the import/export sets. */
  char *header = NULL;
  size_t header_len = 0;
  rc = read_file(h_p, 64u << 20, &header, &header_len);
  if (rc < 0) {
    realm_set_err(err, errlen, "cannot read the generated header '%s'", h_p);
    rc = REALM_E_IO;
    goto out;
  }
  int imports_realm = 0;
  rc = check_interface(header, &imports_realm, err, errlen);
  free(header);
  if (rc < 0) goto out;
  rc = write_shim(shim_p, imports_realm);
  if (rc < 0) {
    realm_set_err(err, errlen, "cannot write '%s': %s", shim_p, strerror(-rc));
    rc = REALM_E_IO;
    goto out;
  }

  /* 3. compile. -fvisibility=hidden keeps everything but the shim table private;
   *    incompatible pointer types are errors so a wrong export signature is refused. */
  char inc[PATH_MAX + 4];
  snprintf(inc, sizeof inc, "-I%s", tmpdir);
  char *cc_argv[] = {(char *)c_compiler(), "-O2", "-shared", "-fPIC", "-fvisibility=hidden",
                     "-fno-strict-aliasing", "-Werror=incompatible-pointer-types",
                     "-Werror=implicit-function-declaration", (char *)rt_defines[0],
                     (char *)rt_defines[1], (char *)rt_defines[2], inc, "-I" SANDBOX_WASM_RT_INCLUDE,
                     "-o", so_tmp, c_p, shim_p, NULL};
  rc = run_tool(cc_argv, tool_out, sizeof tool_out);
  if (rc == REALM_E_SYSTEM) {
    realm_set_err(err, errlen, "cannot run the C compiler '%s': %s", cc_argv[0], tool_out);
    goto out;
  }
  if (rc < 0) {
    realm_set_err(err, errlen,
                  "module does not match guest ABI v%d (C compile of the translation failed): %s",
                  REALM_GUEST_ABI_VERSION, tool_out);
    goto out;
  }
  if (rename(so_tmp, so_path) != 0) {
    realm_set_err(err, errlen, "cannot move the module into the cache '%s': %s", so_path,
                  strerror(errno));
    rc = REALM_E_IO;
    goto out;
  }
  memcpy(ret_sha256, sha, sizeof sha);
  memcpy(ret_so_path, so_path, strlen(so_path) + 1);
  *ret_cached = 0;
  rc = 0;
out:
  remove_tree(tmpdir);
  return rc;
}

int sandbox_module_load(const uint8_t *wasm, size_t len, const char *cache_dir,
                        struct sandbox_module **ret_module, char *err, size_t errlen) {
  if (!ret_module) {
    realm_set_err(err, errlen, "sandbox_module_load: NULL ret_module");
    return REALM_E_INVALID_ARGUMENT;
  }
  struct sandbox_module *m = calloc(1, sizeof *m);
  if (!m) {
    realm_set_err(err, errlen, "out of memory");
    return REALM_E_NOMEM;
  }
  int rc = sandbox_module_build(wasm, len, cache_dir, m->sha256, m->so_path, sizeof m->so_path,
                                &m->from_cache, err, errlen);
  if (rc < 0) {
    free(m);
    return rc;
  }
  m->dl = dlopen(m->so_path, RTLD_NOW | RTLD_LOCAL);
  if (!m->dl) {
    const char *e = dlerror();
    realm_set_err(err, errlen, "cannot load module '%s': %s", m->so_path, e ? e : "unknown error");
    free(m);
    return REALM_E_INVALID_ARGUMENT;
  }
  m->shim = dlsym(m->dl, "realm_shim_v1");
  if (!m->shim || m->shim->shim_version != SANDBOX_SHIM_VERSION || !m->shim->instance_bytes ||
      m->shim->instance_bytes > (64u << 20)) {
    realm_set_err(err, errlen,
                  "module object '%s' lacks a valid realm_shim_v1 table (stale cache?)",
                  m->so_path);
    dlclose(m->dl);
    free(m);
    return REALM_E_INVALID_ARGUMENT;
  }
  wasm_rt_init();
  /* Registers the module's function types in the runtime (host code, not guest code). */
  m->shim->init_module();
  *ret_module = m;
  return 0;
}

int sandbox_module_load_file(const char *wasm_path, const char *cache_dir,
                             struct sandbox_module **ret_module, char *err, size_t errlen) {
  if (!wasm_path) {
    realm_set_err(err, errlen, "sandbox_module_load_file: NULL path");
    return REALM_E_INVALID_ARGUMENT;
  }
  char *buf = NULL;
  size_t n = 0;
  int rc = read_file(wasm_path, REALM_GUEST_MAX_MODULE_BYTES, &buf, &n);
  if (rc == -EFBIG) {
    realm_set_err(err, errlen,
                  "module '%s' is over %u bytes (REALM_GUEST_MAX_MODULE_BYTES)", wasm_path,
                  (unsigned)REALM_GUEST_MAX_MODULE_BYTES);
    return REALM_E_TOO_LARGE;
  }
  if (rc < 0) {
    realm_set_err(err, errlen, "cannot read module '%s': %s", wasm_path, strerror(-rc));
    return rc == -ENOENT ? REALM_E_NOT_FOUND : rc == -ENOMEM ? REALM_E_NOMEM : REALM_E_IO;
  }
  rc = sandbox_module_load((const uint8_t *)buf, n, cache_dir, ret_module, err, errlen);
  free(buf);
  return rc;
}

const char *sandbox_module_sha256(const struct sandbox_module *module) {
  return module ? module->sha256 : NULL;
}

const char *sandbox_module_so_path(const struct sandbox_module *module) {
  return module ? module->so_path : NULL;
}

int sandbox_module_from_cache(const struct sandbox_module *module) {
  return module ? module->from_cache : 0;
}

void sandbox_module_free(struct sandbox_module *module) {
  if (!module) return;
  /* An instance still alive would run code from the unmapped object: keep it mapped then. */
  if (module->n_instances == 0) dlclose(module->dl);
  free(module);
}
