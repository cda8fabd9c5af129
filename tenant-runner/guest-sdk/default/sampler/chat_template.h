/*
 * chat_template.h — render OpenAI chat messages into a model's prompt text.
 *
 * A GGUF model carries its chat template as a Jinja program (tokenizer.chat_template). A
 * Jinja interpreter inside every tenant's sandbox would be large and a new attack surface, so,
 * like llama.cpp's llm_chat_apply_template, we recognise the common template families by
 * distinctive markers and render them with hand-written code whose whitespace follows the
 * published Hugging Face templates exactly:
 *
 *   llama2   <s>[INST] <<SYS>>\n{sys}\n<</SYS>>\n\n{user} [/INST] {assistant} </s><s>[INST] ...
 *   llama3   <|begin_of_text|><|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>
 *   chatml   <|im_start|>{role}\n{content}<|im_end|>\n
 *   mistral  <s>[INST] {user} [/INST]{assistant}</s>[INST] ...
 *   zephyr   <|{role}|>\n{content}</s>\n
 *   raw      contents joined by "\n" (no markers; for base models and completion-style use)
 *
 * docs/sampling.md lists the per-family details (trimming, where a system message goes, what
 * add_generation_prompt appends). Families that spell the BOS token in the text (llama2,
 * llama3, mistral) report it via chat_template_has_bos, so the tokenizer must parse special
 * tokens in the prompt and must not add a second BOS.
 */
#ifndef REALM_CHAT_TEMPLATE_H
#define REALM_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

enum chat_template_kind {
  CHAT_TEMPLATE_RAW = 0,
  CHAT_TEMPLATE_LLAMA2,
  CHAT_TEMPLATE_LLAMA3,
  CHAT_TEMPLATE_CHATML,
  CHAT_TEMPLATE_MISTRAL,
  CHAT_TEMPLATE_ZEPHYR,
};

struct chat_message {
  const char *role;    /* "system", "user" or "assistant" */
  const char *content; /* UTF-8, NUL-terminated */
};

/* Looks a family up by the name a tenant config uses: "raw", "llama2", "llama3", "chatml",
 * "mistral", "zephyr". Unknown names -> REALM_E_NOT_FOUND with the name in err. */
int chat_template_from_name(const char *name, enum chat_template_kind *ret_kind, char *err,
                            size_t errlen);

/* Recognises the family of a GGUF tokenizer.chat_template Jinja string by its markers.
 * Unknown or empty -> REALM_E_UNSUPPORTED with the start of the template quoted in err, so an
 * operator can set chat_template by name in the tenant config instead. */
int chat_template_detect(const char *jinja, enum chat_template_kind *ret_kind, char *err,
                         size_t errlen);

/* The family's config name ("llama3", ...). */
const char *chat_template_name(enum chat_template_kind kind);

/* True when the rendered prompt already begins with the BOS token's text. */
bool chat_template_has_bos(enum chat_template_kind kind);

/* The text of the token that ends an assistant turn ("<|eot_id|>", "<|im_end|>", "</s>"), for
 * the caller to add as a stop token; NULL for raw. */
const char *chat_template_end_of_turn(enum chat_template_kind kind);

/* Renders msgs[0..n) and, when add_generation_prompt, the opening of the assistant's reply.
 * Writes a NUL-terminated string to out (at most out_cap bytes including the NUL) and its
 * length to *ret_len. Errors: REALM_E_INVALID_ARGUMENT naming messages[i] (unknown role,
 * missing content, an order the family cannot express), REALM_E_TOO_LARGE when the prompt does
 * not fit (err says how many bytes it needs). *ret_len is untouched on error; out then holds
 * unspecified bytes. */
int chat_template_render(enum chat_template_kind kind, const struct chat_message *msgs, size_t n,
                         bool add_generation_prompt, char *out, size_t out_cap, size_t *ret_len,
                         char *err, size_t errlen);

#endif /* REALM_CHAT_TEMPLATE_H */
