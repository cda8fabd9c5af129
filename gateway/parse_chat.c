/*
 * parse_chat.c — the `messages` array of /v1/chat/completions: roles, string content or
 * arrays of text parts (concatenated; image/audio parts are refused clearly because no Realm
 * model takes them), and the prompt-size estimate used for token-rate admission.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "realm/error.h"
#include "realm/limits.h"
#include "request.h"

static bool role_known(const char *r) {
  return !strcmp(r, "system") || !strcmp(r, "developer") || !strcmp(r, "user") ||
         !strcmp(r, "assistant") || !strcmp(r, "tool");
}

/* Content as one string: a string as is, or text parts joined. */
static int parse_content(const json_t *c, size_t i, const char *role, struct gw_parsed *p,
                         const char **ret, struct gw_param_error *perr) {
  char param[48];
  snprintf(param, sizeof param, "messages[%zu].content", i);
  if (!c || json_is_null(c)) {
    /* An assistant turn that only carried tool calls has no content. */
    if (!strcmp(role, "assistant")) {
      *ret = "";
      return 0;
    }
    return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, param, "'%s' is required", param);
  }
  if (json_is_string(c)) {
    *ret = json_string_value(c);
    return 0;
  }
  if (!json_is_array(c))
    return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, param,
                         "'%s' must be a string or an array of text parts", param);
  struct gw_buf b = {0};
  for (size_t k = 0; k < json_array_size(c); k++) {
    const json_t *part = json_array_get(c, k);
    char pp[96];
    snprintf(pp, sizeof pp, "%s[%zu]", param, k);
    const json_t *type = json_is_object(part) ? json_object_get(part, "type") : NULL;
    if (!json_is_string(type)) {
      gw_buf_free(&b);
      return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, pp,
                           "'%s' must be an object with a string 'type'", pp);
    }
    if (strcmp(json_string_value(type), "text") != 0) {
      gw_buf_free(&b);
      return gw_param_fail(perr, REALM_E_UNSUPPORTED, pp,
                           "content part type '%.32s' is not supported; only 'text' is",
                           json_string_value(type));
    }
    const json_t *text = json_object_get(part, "text");
    if (!json_is_string(text)) {
      gw_buf_free(&b);
      return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, pp, "'%s.text' must be a string", pp);
    }
    if (gw_buf_append(&b, json_string_value(text), json_string_length(text)) < 0) {
      gw_buf_free(&b);
      return gw_param_fail(perr, REALM_E_NOMEM, "", "out of memory");
    }
  }
  char *s = gw_buf_steal(&b, NULL);
  if (!s || gw_parsed_own(p, s) < 0) return gw_param_fail(perr, REALM_E_NOMEM, "", "out of memory");
  *ret = s;
  return 0;
}

int gw_parse_chat_messages(const json_t *root, struct gw_parsed *p, struct gw_param_error *perr) {
  const json_t *msgs = json_object_get(root, "messages");
  if (!msgs || json_is_null(msgs))
    return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, "messages",
                         "you must provide a messages parameter");
  if (!json_is_array(msgs))
    return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, "messages",
                         "'messages' must be an array");
  size_t n = json_array_size(msgs);
  if (n == 0)
    return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, "messages",
                         "'messages' must contain at least one message");
  if (n > REALM_MAX_MESSAGES)
    return gw_param_fail(perr, REALM_E_TOO_LARGE, "messages",
                         "'messages' may hold at most %d messages, got %zu", REALM_MAX_MESSAGES, n);
  p->msgs = calloc(n, sizeof *p->msgs);
  if (!p->msgs) return gw_param_fail(perr, REALM_E_NOMEM, "", "out of memory");
  uint64_t bytes = 0;
  for (size_t i = 0; i < n; i++) {
    const json_t *m = json_array_get(msgs, i);
    char param[48];
    snprintf(param, sizeof param, "messages[%zu]", i);
    if (!json_is_object(m))
      return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, param, "'%s' must be an object", param);
    const json_t *role = json_object_get(m, "role");
    snprintf(param, sizeof param, "messages[%zu].role", i);
    if (!json_is_string(role))
      return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, param, "'%s' must be a string", param);
    const char *rs = json_string_value(role);
    if (!role_known(rs))
      return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, param,
                           "'%s' must be one of system, developer, user, assistant, tool; got "
                           "'%.32s'",
                           param, rs);
    struct gw_chat_message *cm = &p->msgs[i];
    cm->role = rs;
    int r = parse_content(json_object_get(m, "content"), i, rs, p, &cm->content, perr);
    if (r < 0) return r;
    const json_t *name = json_object_get(m, "name");
    if (name && !json_is_null(name)) {
      snprintf(param, sizeof param, "messages[%zu].name", i);
      if (!json_is_string(name))
        return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, param, "'%s' must be a string",
                             param);
      cm->name = json_string_value(name);
    }
    const json_t *tcid = json_object_get(m, "tool_call_id");
    if (tcid && !json_is_null(tcid)) {
      snprintf(param, sizeof param, "messages[%zu].tool_call_id", i);
      if (!json_is_string(tcid))
        return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, param, "'%s' must be a string",
                             param);
      cm->tool_call_id = json_string_value(tcid);
    }
    bytes += strlen(cm->content) + 16; /* + role markers of a chat template */
  }
  p->req.n_messages = n;
  /* ~4 bytes per token for English BPE vocabularies; the runner counts exactly. */
  uint64_t est = (bytes + 3) / 4 + 3;
  p->req.prompt_tokens_estimate = est > UINT32_MAX ? UINT32_MAX : (uint32_t)est;
  return 0;
}
