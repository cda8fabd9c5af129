/*
 * chat_template.c — the chat template families of chat_template.h, rendered by hand.
 *
 * Each renderer mirrors its published Hugging Face Jinja template:
 *   llama2  (meta-llama/Llama-2-*-chat-hf): optional first system message folded into the
 *           first user turn as "<<SYS>>\n...\n<</SYS>>\n\n"; every user turn is
 *           "<s>[INST] " + strip(content) + " [/INST]", every assistant turn
 *           " " + strip(content) + " </s>"; roles must alternate user/assistant.
 *  llama3  (Meta-Llama-3-*-Instruct): "<|begin_of_text|>" then per message a header and the
 *           content trimmed, closed by "<|eot_id|>".
 *  chatml  (Qwen, OpenHermes, Yi, ...): "<|im_start|>role\ncontent<|im_end|>\n", untrimmed.
 *  mistral (Mistral-7B-Instruct v0.1/v0.2, Mixtral-8x7B): "<s>" then "[INST] " + user +
 *           " [/INST]" and assistant + "</s>", untrimmed; those templates refuse a system
 *           message, we prepend it to the first user message followed by "\n\n" (what
 *           Mistral's later templates and llama.cpp do) rather than fail the request.
 *  zephyr  (HuggingFaceH4/zephyr-7b-beta): "<|role|>\n" + content + "</s>\n".
 * "strip"/"trim" remove ASCII whitespace (space, \t, \n, \v, \f, \r) from both ends; Python's
 * str.strip also removes Unicode spaces, a difference that only matters for prompts that
 * begin or end with such characters.
 *
 * All output goes through a bounded writer that keeps counting past the end, so an oversized
 * prompt is reported with the exact size it would need.
 */
#include "chat_template.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "realm/error.h"

__attribute__((format(printf, 3, 4)))
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static const struct {
  const char *name;
  enum chat_template_kind kind;
  bool has_bos;
  const char *end_of_turn;
} FAMILIES[] = {
    {"raw", CHAT_TEMPLATE_RAW, false, NULL},
    {"llama2", CHAT_TEMPLATE_LLAMA2, true, "</s>"},
    {"llama3", CHAT_TEMPLATE_LLAMA3, true, "<|eot_id|>"},
    {"chatml", CHAT_TEMPLATE_CHATML, false, "<|im_end|>"},
    {"mistral", CHAT_TEMPLATE_MISTRAL, true, "</s>"},
    {"zephyr", CHAT_TEMPLATE_ZEPHYR, false, "</s>"},
};
#define N_FAMILIES (sizeof FAMILIES / sizeof FAMILIES[0])

int chat_template_from_name(const char *name, enum chat_template_kind *ret_kind, char *err,
                            size_t errlen) {
  if (!name || !ret_kind) {
    set_err(err, errlen, "chat_template: no name given");
    return REALM_E_INVALID_ARGUMENT;
  }
  for (size_t i = 0; i < N_FAMILIES; i++) {
    if (strcmp(name, FAMILIES[i].name) == 0) {
      *ret_kind = FAMILIES[i].kind;
      return REALM_OK;
    }
  }
  set_err(err, errlen,
          "chat_template \"%.64s\": unknown name (known: raw, llama2, llama3, chatml, mistral, zephyr)",
          name);
  return REALM_E_NOT_FOUND;
}

const char *chat_template_name(enum chat_template_kind kind) {
  for (size_t i = 0; i < N_FAMILIES; i++)
    if (FAMILIES[i].kind == kind) return FAMILIES[i].name;
  return "unknown";
}

bool chat_template_has_bos(enum chat_template_kind kind) {
  for (size_t i = 0; i < N_FAMILIES; i++)
    if (FAMILIES[i].kind == kind) return FAMILIES[i].has_bos;
  return false;
}

const char *chat_template_end_of_turn(enum chat_template_kind kind) {
  for (size_t i = 0; i < N_FAMILIES; i++)
    if (FAMILIES[i].kind == kind) return FAMILIES[i].end_of_turn;
  return NULL;
}

/* Quotes the first bytes of s into buf for an error message, escaping control characters so
 * a template's newlines do not break a log line. */
static void quote_prefix(const char *s, char *buf, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; s[i] && o + 5 < cap && i < 60; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\n') {
      buf[o++] = '\\';
      buf[o++] = 'n';
    } else if (c < 0x20 || c == 0x7f || c == '"') {
      buf[o++] = '?';
    } else {
      buf[o++] = (char)c;
    }
  }
  buf[o] = '\0';
}

int chat_template_detect(const char *jinja, enum chat_template_kind *ret_kind, char *err,
                         size_t errlen) {
  if (!ret_kind) return REALM_E_INVALID_ARGUMENT;
  if (!jinja || !jinja[0]) {
    set_err(err, errlen,
            "chat_template: the model has no tokenizer.chat_template; set chat_template by name "
            "in the tenant config (raw, llama2, llama3, chatml, mistral, zephyr)");
    return REALM_E_UNSUPPORTED;
  }
  /* A config may hold the name itself where a template is expected. */
  for (size_t i = 0; i < N_FAMILIES; i++) {
    if (strcmp(jinja, FAMILIES[i].name) == 0) {
      *ret_kind = FAMILIES[i].kind;
      return REALM_OK;
    }
  }
  /* Markers in order of specificity: ChatML and Llama 3 tokens are unique to them; "[INST]" is
   * shared by Llama 2 and Mistral, which <<SYS>> tells apart; Phi-3 also uses <|user|> but
   * closes turns with <|end|>, which Zephyr never does. */
  enum chat_template_kind kind;
  if (strstr(jinja, "<|im_start|>"))
    kind = CHAT_TEMPLATE_CHATML;
  else if (strstr(jinja, "<|start_header_id|>"))
    kind = CHAT_TEMPLATE_LLAMA3;
  else if (strstr(jinja, "[INST]"))
    kind = strstr(jinja, "<<SYS>>") ? CHAT_TEMPLATE_LLAMA2 : CHAT_TEMPLATE_MISTRAL;
  else if (strstr(jinja, "<|user|>") && !strstr(jinja, "<|end|>"))
    kind = CHAT_TEMPLATE_ZEPHYR;
  else {
    char quoted[96];
    quote_prefix(jinja, quoted, sizeof quoted);
    set_err(err, errlen,
            "chat_template \"%s...\": not a known family; set chat_template by name in the "
            "tenant config (raw, llama2, llama3, chatml, mistral, zephyr)",
            quoted);
    return REALM_E_UNSUPPORTED;
  }
  *ret_kind = kind;
  return REALM_OK;
}

/* ---- rendering --------------------------------------------------------------------------- */

struct writer {
  char *out;
  size_t cap;
  size_t len; /* bytes the prompt needs so far; may exceed cap */
};

static void put_n(struct writer *w, const char *s, size_t n) {
  if (w->len < w->cap) {
    size_t room = w->cap - w->len;
    memcpy(w->out + w->len, s, n < room ? n : room);
  }
  w->len += n;
}

static void put(struct writer *w, const char *s) {
  put_n(w, s, strlen(s));
}

static bool is_ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Writes the concatenation of segs[0..n) with leading and trailing whitespace removed, the way
 * Jinja's content.strip() treats a string built by concatenation. */
static void put_stripped(struct writer *w, const char *const *segs, size_t n) {
  size_t lens[4];
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    lens[i] = strlen(segs[i]);
    total += lens[i];
  }
  /* Virtual positions [begin, end) of the kept range. */
  size_t begin = 0, end = total;
  for (size_t i = 0, base = 0; i < n && begin == base; base += lens[i], i++) {
    size_t k = 0;
    while (k < lens[i] && is_ascii_space(segs[i][k])) k++;
    begin = base + k;
  }
  for (size_t i = n, top = total; i-- > 0 && end == top; top -= lens[i]) {
    size_t k = lens[i];
    while (k > 0 && is_ascii_space(segs[i][k - 1])) k--;
    end = top - lens[i] + k;
  }
  if (end <= begin) return;
  for (size_t i = 0, base = 0; i < n; base += lens[i], i++) {
    if (end <= base || begin >= base + lens[i]) continue; /* segment outside the kept range */
    size_t from = begin > base ? begin - base : 0;
    size_t to = end < base + lens[i] ? end - base : lens[i];
    put_n(w, segs[i] + from, to - from);
  }
}

enum role { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT };

static int parse_roles(const struct chat_message *msgs, size_t n, enum role *roles, char *err,
                       size_t errlen) {
  for (size_t i = 0; i < n; i++) {
    const char *r = msgs[i].role;
    if (!r) {
      set_err(err, errlen, "messages[%zu].role: missing", i);
      return REALM_E_INVALID_ARGUMENT;
    }
    if (strcmp(r, "system") == 0)
      roles[i] = ROLE_SYSTEM;
    else if (strcmp(r, "user") == 0)
      roles[i] = ROLE_USER;
    else if (strcmp(r, "assistant") == 0)
      roles[i] = ROLE_ASSISTANT;
    else {
      set_err(err, errlen, "messages[%zu].role \"%.32s\": must be system, user or assistant", i, r);
      return REALM_E_INVALID_ARGUMENT;
    }
    if (!msgs[i].content) {
      set_err(err, errlen, "messages[%zu].content: missing", i);
      return REALM_E_INVALID_ARGUMENT;
    }
  }
  return REALM_OK;
}

/* Llama 2 and Mistral: an optional system message first, then user/assistant alternating,
 * starting with user. Returns the index of the first non-system message. */
static int check_alternating(enum chat_template_kind kind, const enum role *roles, size_t n,
                             size_t *ret_first, char *err, size_t errlen) {
  size_t first = (n > 0 && roles[0] == ROLE_SYSTEM) ? 1 : 0;
  if (first >= n) {
    set_err(err, errlen, "messages: %s needs at least one user message", chat_template_name(kind));
    return REALM_E_INVALID_ARGUMENT;
  }
  for (size_t i = first; i < n; i++) {
    enum role want = ((i - first) % 2 == 0) ? ROLE_USER : ROLE_ASSISTANT;
    if (roles[i] != want) {
      set_err(err, errlen,
              "messages[%zu].role: %s needs an optional system message first, then user and "
              "assistant alternating, starting with user",
              i, chat_template_name(kind));
      return REALM_E_INVALID_ARGUMENT;
    }
  }
  *ret_first = first;
  return REALM_OK;
}

static const char *ROLE_NAMES[] = {"system", "user", "assistant"};

int chat_template_render(enum chat_template_kind kind, const struct chat_message *msgs, size_t n,
                         bool add_generation_prompt, char *out, size_t out_cap, size_t *ret_len,
                         char *err, size_t errlen) {
  if ((n > 0 && !msgs) || !out || !ret_len) {
    set_err(err, errlen, "chat_template_render: messages, out and ret_len are required");
    return REALM_E_INVALID_ARGUMENT;
  }
  if (n == 0) {
    set_err(err, errlen, "messages: at least one message is required");
    return REALM_E_INVALID_ARGUMENT;
  }
  if (n > 1024) { /* REALM_MAX_MESSAGES; the gateway enforces it too */
    set_err(err, errlen, "messages: %zu given, at most 1024 allowed", n);
    return REALM_E_TOO_LARGE;
  }
  enum role roles[1024];
  int r = parse_roles(msgs, n, roles, err, errlen);
  if (r < 0) return r;

  struct writer w = {out, out_cap, 0};
  switch (kind) {
  case CHAT_TEMPLATE_RAW:
    for (size_t i = 0; i < n; i++) {
      if (i > 0) put(&w, "\n");
      put(&w, msgs[i].content);
    }
    break;

  case CHAT_TEMPLATE_LLAMA2: {
    size_t first;
    r = check_alternating(kind, roles, n, &first, err, errlen);
    if (r < 0) return r;
    for (size_t i = first; i < n; i++) {
      if (roles[i] == ROLE_USER) {
        put(&w, "<s>[INST] ");
        if (i == 1 && first == 1) {
          const char *segs[4] = {"<<SYS>>\n", msgs[0].content, "\n<</SYS>>\n\n", msgs[i].content};
          put_stripped(&w, segs, 4);
        } else {
          const char *segs[1] = {msgs[i].content};
          put_stripped(&w, segs, 1);
        }
        put(&w, " [/INST]");
      } else {
        const char *segs[1] = {msgs[i].content};
        put(&w, " ");
        put_stripped(&w, segs, 1);
        put(&w, " </s>");
      }
    }
    /* The prompt already ends with " [/INST]", where the assistant's reply begins. */
    break;
  }

  case CHAT_TEMPLATE_MISTRAL: {
    size_t first;
    r = check_alternating(kind, roles, n, &first, err, errlen);
    if (r < 0) return r;
    put(&w, "<s>");
    for (size_t i = first; i < n; i++) {
      if (roles[i] == ROLE_USER) {
        put(&w, "[INST] ");
        if (i == 1 && first == 1) {
          put(&w, msgs[0].content);
          put(&w, "\n\n");
        }
        put(&w, msgs[i].content);
        put(&w, " [/INST]");
      } else {
        put(&w, msgs[i].content);
        put(&w, "</s>");
      }
    }
    break;
  }

  case CHAT_TEMPLATE_LLAMA3:
    put(&w, "<|begin_of_text|>");
    for (size_t i = 0; i < n; i++) {
      const char *segs[1] = {msgs[i].content};
      put(&w, "<|start_header_id|>");
      put(&w, ROLE_NAMES[roles[i]]);
      put(&w, "<|end_header_id|>\n\n");
      put_stripped(&w, segs, 1);
      put(&w, "<|eot_id|>");
    }
    if (add_generation_prompt) put(&w, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    break;

  case CHAT_TEMPLATE_CHATML:
    for (size_t i = 0; i < n; i++) {
      put(&w, "<|im_start|>");
      put(&w, ROLE_NAMES[roles[i]]);
      put(&w, "\n");
      put(&w, msgs[i].content);
      put(&w, "<|im_end|>\n");
    }
    if (add_generation_prompt) put(&w, "<|im_start|>assistant\n");
    break;

  case CHAT_TEMPLATE_ZEPHYR:
    for (size_t i = 0; i < n; i++) {
      put(&w, "<|");
      put(&w, ROLE_NAMES[roles[i]]);
      put(&w, "|>\n");
      put(&w, msgs[i].content);
      put(&w, "</s>\n");
    }
    if (add_generation_prompt) put(&w, "<|assistant|>\n");
    break;

  default:
    set_err(err, errlen, "chat_template: unknown kind %d", (int)kind);
    return REALM_E_INVALID_ARGUMENT;
  }

  if (w.len + 1 > out_cap) {
    set_err(err, errlen, "chat prompt: needs %zu bytes, the limit is %zu", w.len + 1, out_cap);
    return REALM_E_TOO_LARGE;
  }
  out[w.len] = '\0';
  *ret_len = w.len;
  return REALM_OK;
}
