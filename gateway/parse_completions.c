/*
 * parse_completions.c — the `prompt` of /v1/completions: a string, or an array holding exactly
 * one string. Several prompts in one request (one choice each) and token-id prompts are refused
 * with a clear 400 rather than half-supported; best_of > 1 and echo are refused the same way.
 */
#include <string.h>

#include "realm/error.h"
#include "request.h"

int gw_parse_completion_prompt(const json_t *root, struct gw_parsed *p,
                               struct gw_param_error *perr) {
  const json_t *prompt = json_object_get(root, "prompt");
  if (!prompt || json_is_null(prompt))
    return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, "prompt",
                         "you must provide a prompt parameter");
  if (json_is_array(prompt)) {
    size_t n = json_array_size(prompt);
    if (n == 0)
      return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, "prompt", "'prompt' must not be empty");
    const json_t *first = json_array_get(prompt, 0);
    if (json_is_integer(first) || json_is_array(first))
      return gw_param_fail(perr, REALM_E_UNSUPPORTED, "prompt",
                           "token id prompts are not supported; send the prompt as text");
    for (size_t i = 0; i < n; i++)
      if (!json_is_string(json_array_get(prompt, i)))
        return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, "prompt",
                             "'prompt' must be a string or an array of strings");
    if (n > 1)
      return gw_param_fail(perr, REALM_E_UNSUPPORTED, "prompt",
                           "multiple prompts in one request are not supported");
    prompt = first;
  }
  if (!json_is_string(prompt))
    return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, "prompt",
                         "'prompt' must be a string or an array of strings");
  p->req.prompt = json_string_value(prompt);

  const json_t *best_of = json_object_get(root, "best_of");
  if (best_of && !json_is_null(best_of)) {
    if (!json_is_integer(best_of))
      return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, "best_of", "'best_of' must be an integer");
    if (json_integer_value(best_of) != 1)
      return gw_param_fail(perr, REALM_E_UNSUPPORTED, "best_of", "best_of other than 1 is not supported");
  }
  const json_t *echo = json_object_get(root, "echo");
  if (echo && !json_is_null(echo)) {
    if (!json_is_boolean(echo))
      return gw_param_fail(perr, REALM_E_INVALID_ARGUMENT, "echo", "'echo' must be a boolean");
    if (json_is_true(echo))
      return gw_param_fail(perr, REALM_E_UNSUPPORTED, "echo", "echo is not supported");
  }
  uint64_t est = (json_string_length(prompt) + 3) / 4 + 1;
  p->req.prompt_tokens_estimate = est > UINT32_MAX ? UINT32_MAX : (uint32_t)est;
  return 0;
}
