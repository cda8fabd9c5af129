/*
 * http_client.h — a deliberately dumb HTTP/1.1 client for the gateway tests: it writes the
 * exact bytes a test gives it over a plain socket and reads until the server closes, so the
 * tests see precisely what goes over the wire (status line, headers, chunked body decoded).
 * Every read has a timeout, so a hung server fails the test instead of hanging it.
 */
#ifndef GW_HTTP_CLIENT_H
#define GW_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

struct http_resp {
  int status;       /* 0 if the server closed without a status line */
  char *head;       /* status line + headers, NUL-terminated */
  char *body;       /* decoded body (chunked transfer decoded), NUL-terminated */
  size_t body_len;
};

/* Connects to 127.0.0.1:port; returns the socket or -1. Receive timeout: timeout_ms. */
int http_connect(uint16_t port, int timeout_ms);
int http_send_all(int fd, const void *p, size_t len);
/* Sends raw and reads the whole response (the request should say Connection: close). */
int http_exchange(uint16_t port, const char *raw, size_t raw_len, struct http_resp *out);
/* Builds and sends a request with an optional bearer key and JSON body. */
int http_call(uint16_t port, const char *method, const char *path, const char *key,
              const char *extra_headers, const char *body, struct http_resp *out);
/* Value of a header (case-insensitive name) copied into buf; NULL if absent. */
const char *http_header(const struct http_resp *r, const char *name, char *buf, size_t len);
/* Reads from fd until the buffer contains needle or timeout; returns bytes read or -1. */
long http_read_until(int fd, char *buf, size_t cap, const char *needle);
void http_resp_free(struct http_resp *r);

#endif
