/*
 * gw_fake_stack.c — test-only executable for the OpenAI SDK test (tests/sdk/): the gateway
 * core with the real runner backend, talking over real ZeroMQ ipc:// to one in-process fake
 * runner (fake_runner.c) that echoes the prompt. Nothing in it generates text for the product.
 *
 * Tenants: "sdk" (key sk-sdk-good, model m1, generous limits) and "tiny" (key sk-sdk-tiny,
 * model m1, 1 request per minute, so its second request is a 429), one fake runner each. It prints "PORT <n>" on
 * stdout once both runner replicas are up, then serves until its stdin reaches EOF (the parent
 * test closes it or dies) or it gets SIGTERM/SIGINT, and cleans up its temporary directory.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "auth.h"
#include "backend_runners.h"
#include "fake_runner.h"
#include "gateway.h"
#include "realm/error.h"

static void log_stderr(void *ctx, enum gw_log_level level, const char *msg) {
  (void)ctx;
  fprintf(stderr, "gw-fake-stack %s: %s\n", level == GW_LOG_ERROR ? "error" : "info", msg);
}

static void on_term(int sig) { (void)sig; }

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const char *base = getenv("REALM_BUILD_ROOT");
  char dir[200], tenants[260], ep[300], sock_path[240], ep_tiny[300], sock_tiny[240];
  snprintf(dir, sizeof dir, "%s/gw-sdk-XXXXXX", base && strlen(base) < 60 ? base : "/tmp");
  if (!mkdtemp(dir)) {
    perror("gw-fake-stack: mkdtemp");
    return 1;
  }
  snprintf(tenants, sizeof tenants, "%s/tenants.json", dir);
  snprintf(sock_path, sizeof sock_path, "%s/runner-sdk-0.sock", dir);
  snprintf(ep, sizeof ep, "ipc://%s", sock_path);
  snprintf(sock_tiny, sizeof sock_tiny, "%s/runner-tiny-0.sock", dir);
  snprintf(ep_tiny, sizeof ep_tiny, "ipc://%s", sock_tiny);

  char hg[65], ht[65];
  gw_key_hash_hex("sk-sdk-good", hg);
  gw_key_hash_hex("sk-sdk-tiny", ht);
  FILE *f = fopen(tenants, "w");
  if (!f) {
    perror("gw-fake-stack: tenants file");
    return 1;
  }
  fprintf(f,
          "[{\"id\":\"sdk\",\"key_hashes\":[\"%s\"],\"models\":[\"m1\"],\"runners\":[\"%s\"],"
          "  \"limits\":{\"requests_per_minute\":100000,\"tokens_per_minute\":100000000}},"
          " {\"id\":\"tiny\",\"key_hashes\":[\"%s\"],\"models\":[\"m1\"],\"runners\":[\"%s\"],"
          "  \"limits\":{\"requests_per_minute\":1}}]",
          hg, ep, ht, ep_tiny);
  fclose(f);

  /* SIGTERM/SIGINT end the stdin read below with EINTR (no SA_RESTART) so we still clean
   * up; they are blocked in every other thread so only the main thread takes them. */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  sigaddset(&term, SIGINT);
  pthread_sigmask(SIG_BLOCK, &term, NULL);

  void *zctx = zmq_ctx_new();
  struct fake_runner *fr = NULL, *fr_tiny = NULL;
  struct gw_runners *rn = NULL;
  struct gw_server *srv = NULL;
  char err[256];
  int rc = 1;
  if (!zctx || fr_start(zctx, ep, "sdk", &fr) < 0 || fr_start(zctx, ep_tiny, "tiny", &fr_tiny) < 0) {
    fprintf(stderr, "gw-fake-stack: cannot start the fake runners at %s, %s\n", ep, ep_tiny);
    goto out;
  }
  struct fr_script script = {.echo = true, .finish = "stop"};
  fr_set_script(fr, &script);
  fr_set_script(fr_tiny, &script);
  struct gw_runners_config rcfg = {.ping_ms = 100, .log = log_stderr};
  if (gw_runners_create(&rcfg, &rn, err, sizeof err) < 0) {
    fprintf(stderr, "gw-fake-stack: %s\n", err);
    goto out;
  }
  struct gw_config cfg = {.listen_addr = "127.0.0.1", .tenants_path = tenants,
                          .backend = gw_runners_backend(rn), .log = log_stderr};
  if (gw_server_start(&cfg, &srv, err, sizeof err) < 0) {
    fprintf(stderr, "gw-fake-stack: %s\n", err);
    goto out;
  }
  /* Bounded wait for the replica's first pong. */
  bool up = false;
  for (int i = 0; i < 1000 && !up; i++) {
    struct gw_runner_stats st, st2;
    up = gw_runners_replica_stats(rn, "sdk", ep, &st) == 0 && st.state == GW_REPLICA_UP &&
         gw_runners_replica_stats(rn, "tiny", ep_tiny, &st2) == 0 && st2.state == GW_REPLICA_UP;
    if (!up) nanosleep(&(struct timespec){0, 5 * 1000000L}, NULL);
  }
  if (!up) {
    fprintf(stderr, "gw-fake-stack: the fake runner never answered a ping\n");
    goto out;
  }
  pthread_sigmask(SIG_UNBLOCK, &term, NULL);
  printf("PORT %u\n", (unsigned)gw_server_port(srv));
  fflush(stdout);
  char buf[256];
  while (read(0, buf, sizeof buf) > 0) {
  }
  rc = 0;
out:
  gw_server_stop(srv);
  gw_runners_destroy(rn);
  fr_stop(fr);
  fr_stop(fr_tiny);
  if (zctx) zmq_ctx_term(zctx);
  unlink(tenants);
  unlink(sock_path);
  unlink(sock_tiny);
  rmdir(dir);
  return rc;
}
