/* test_error.c — the error table yields consistent names, HTTP statuses and OpenAI types. */
#include "realm/error.h"
#include "realm_test.h"

#include <errno.h>

TEST(error_names_round_trip) {
  CHECK_STR_EQ(realm_err_name(REALM_E_NOT_FOUND), "not_found");
  CHECK_EQ_INT(realm_err_from_name("not_found"), REALM_E_NOT_FOUND);
  CHECK_EQ_INT(realm_err_from_name("rate_limited"), REALM_E_RATE_LIMITED);
  CHECK_EQ_INT(realm_err_from_name("no_such_error"), REALM_E_INTERNAL);
  CHECK_STR_EQ(realm_err_name(-9999), "unknown_error");
}

TEST(error_http_and_openai_mapping) {
  CHECK_EQ_INT(realm_err_http_status(REALM_E_UNAUTHENTICATED), 401);
  CHECK_STR_EQ(realm_err_openai_type(REALM_E_UNAUTHENTICATED), "authentication_error");
  CHECK_EQ_INT(realm_err_http_status(REALM_E_RATE_LIMITED), 429);
  CHECK_STR_EQ(realm_err_openai_type(REALM_E_RATE_LIMITED), "rate_limit_error");
  CHECK_EQ_INT(realm_err_http_status(REALM_E_INVALID_ARGUMENT), 400);
  CHECK_EQ_INT(realm_err_http_status(-9999), 500);
  CHECK_STR_EQ(realm_err_openai_type(-9999), "server_error");
}

TEST(error_from_errno) {
  CHECK_EQ_INT(realm_err_from_errno(ENOMEM), REALM_E_NOMEM);
  CHECK_EQ_INT(realm_err_from_errno(ETIMEDOUT), REALM_E_TIMEOUT);
  CHECK_EQ_INT(realm_err_from_errno(EBADF), REALM_E_SYSTEM);
  CHECK_EQ_INT(realm_err_from_errno(0), REALM_OK);
}

/* The shared (err, errlen) writer: formats, truncates to errlen, tolerates no buffer, and
 * realm_fail hands the code back. */
TEST(error_message_buffer_writers) {
  char err[16] = "untouched";
  CHECK_EQ_INT(realm_fail(REALM_E_OUT_OF_RANGE, err, sizeof err, "layer %u of %u", 7u, 4u),
               REALM_E_OUT_OF_RANGE);
  CHECK_STR_EQ(err, "layer 7 of 4");
  realm_set_err(err, sizeof err, "a message longer than %d bytes", 16);
  CHECK_STR_EQ(err, "a message longe"); /* 15 characters and the NUL */
  CHECK_EQ_INT(realm_fail(REALM_E_NOMEM, NULL, 0, "ignored %d", 1), REALM_E_NOMEM);
  memcpy(err, "kept", 5);
  realm_set_err(err, 0, "not written");
  CHECK_STR_EQ(err, "kept");
}
