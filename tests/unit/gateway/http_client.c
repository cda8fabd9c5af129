/* http_client.c — the raw-socket HTTP client of http_client.h. */
#include "http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int http_connect(uint16_t port, int timeout_ms) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int http_send_all(int fd, const void *p, size_t len) {
  const char *c = p;
  while (len) {
    ssize_t n = send(fd, c, len, MSG_NOSIGNAL);
    if (n <= 0) return -1;
    c += n;
    len -= (size_t)n;
  }
  return 0;
}

static int decode_chunked(const char *in, size_t len, char **ret, size_t *ret_len) {
  char *out = malloc(len + 1);
  size_t o = 0, i = 0;
  if (!out) return -1;
  for (;;) {
    char *end = NULL;
    if (i >= len) break;
    unsigned long n = strtoul(in + i, &end, 16);
    const char *crlf = strstr(in + i, "\r\n");
    if (!crlf) break;
    i = (size_t)(crlf - in) + 2;
    if (n == 0) break;
    if (i + n > len) n = len - i;
    memcpy(out + o, in + i, n);
    o += n;
    i += n + 2;
  }
  out[o] = '\0';
  *ret = out;
  *ret_len = o;
  return 0;
}

static int parse_response(char *raw, size_t len, struct http_resp *out) {
  memset(out, 0, sizeof *out);
  char *sep = strstr(raw, "\r\n\r\n");
  if (!sep) {
    out->head = strdup("");
    out->body = strdup("");
    return len ? -1 : 0;
  }
  size_t hl = (size_t)(sep - raw);
  out->head = strndup(raw, hl);
  sscanf(raw, "HTTP/1.%*d %d", &out->status);
  const char *body = sep + 4;
  size_t bl = len - hl - 4;
  char te[64];
  if (http_header(out, "Transfer-Encoding", te, sizeof te) && strcasecmp(te, "chunked") == 0)
    return decode_chunked(body, bl, &out->body, &out->body_len);
  out->body = malloc(bl + 1);
  memcpy(out->body, body, bl);
  out->body[bl] = '\0';
  out->body_len = bl;
  return 0;
}

int http_exchange(uint16_t port, const char *raw, size_t raw_len, struct http_resp *out) {
  int fd = http_connect(port, 10000);
  if (fd < 0) return -1;
  if (http_send_all(fd, raw, raw_len) < 0) {
    /* The server may refuse early (413) and close while we still send: read what it said. */
  }
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (len + 1 >= cap) buf = realloc(buf, cap *= 2);
    ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
    if (n <= 0) break;
    len += (size_t)n;
  }
  buf[len] = '\0';
  close(fd);
  int r = parse_response(buf, len, out);
  free(buf);
  return r;
}

int http_call(uint16_t port, const char *method, const char *path, const char *key,
              const char *extra_headers, const char *body, struct http_resp *out) {
  size_t bl = body ? strlen(body) : 0;
  size_t cap = bl + 1024 + (extra_headers ? strlen(extra_headers) : 0);
  char *req = malloc(cap);
  int n = snprintf(req, cap, "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n", method,
                   path);
  if (key) n += snprintf(req + n, cap - (size_t)n, "Authorization: Bearer %s\r\n", key);
  if (extra_headers) n += snprintf(req + n, cap - (size_t)n, "%s", extra_headers);
  if (body)
    n += snprintf(req + n, cap - (size_t)n,
                  "Content-Type: application/json\r\nContent-Length: %zu\r\n", bl);
  n += snprintf(req + n, cap - (size_t)n, "\r\n");
  if (body) {
    memcpy(req + n, body, bl);
    n += (int)bl;
  }
  int r = http_exchange(port, req, (size_t)n, out);
  free(req);
  return r;
}

const char *http_header(const struct http_resp *r, const char *name, char *buf, size_t len) {
  size_t nl = strlen(name);
  const char *p = r->head;
  while (p && (p = strstr(p, "\r\n"))) {
    p += 2;
    if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
      const char *v = p + nl + 1;
      while (*v == ' ') v++;
      const char *e = strstr(v, "\r\n");
      size_t vl = e ? (size_t)(e - v) : strlen(v);
      if (vl >= len) vl = len - 1;
      memcpy(buf, v, vl);
      buf[vl] = '\0';
      return buf;
    }
  }
  return NULL;
}

long http_read_until(int fd, char *buf, size_t cap, const char *needle) {
  size_t len = 0;
  buf[0] = '\0';
  while (len + 1 < cap) {
    ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
    if (n <= 0) return -1;
    len += (size_t)n;
    buf[len] = '\0';
    if (strstr(buf, needle)) return (long)len;
  }
  return -1;
}

void http_resp_free(struct http_resp *r) {
  free(r->head);
  free(r->body);
  r->head = r->body = NULL;
}
