/*
 * test_chat_template.c — exact prompt text for each chat template family, detection from
 * Jinja template strings (including one read from a real GGUF vocabulary file), and the
 * refusals: unknown roles, orders a family cannot express, prompts over the size limit.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template.h"
#include "realm/error.h"
#include "realm_test.h"

static const struct chat_message CONVO[4] = {
    {"system", "You are helpful."},
    {"user", "Hello!"},
    {"assistant", "Hi there."},
    {"user", "How are you?"},
};

static char out[4096];

static const char *render(enum chat_template_kind k, const struct chat_message *m, size_t n,
                          bool gen) {
  size_t len = 0;
  char err[256] = "";
  if (chat_template_render(k, m, n, gen, out, sizeof out, &len, err, sizeof err) != REALM_OK) {
    printf("# render: %s\n", err);
    return NULL;
  }
  if (strlen(out) != len) return NULL;
  return out;
}

TEST(llama2_exact) {
  CHECK_STR_EQ(render(CHAT_TEMPLATE_LLAMA2, CONVO, 4, true),
               "<s>[INST] <<SYS>>\nYou are helpful.\n<</SYS>>\n\nHello! [/INST] Hi there. </s>"
               "<s>[INST] How are you? [/INST]");
  /* add_generation_prompt changes nothing: the prompt already ends where the reply starts */
  CHECK_STR_EQ(render(CHAT_TEMPLATE_LLAMA2, CONVO, 4, false),
               "<s>[INST] <<SYS>>\nYou are helpful.\n<</SYS>>\n\nHello! [/INST] Hi there. </s>"
               "<s>[INST] How are you? [/INST]");
  CHECK(chat_template_has_bos(CHAT_TEMPLATE_LLAMA2));
}

TEST(llama2_strips_like_the_hf_template) {
  /* Without a system message the user text is stripped on both sides... */
  const struct chat_message m1[1] = {{"user", "  padded \n"}};
  CHECK_STR_EQ(render(CHAT_TEMPLATE_LLAMA2, m1, 1, true), "<s>[INST] padded [/INST]");
  /* ...with one, strip() applies to "<<SYS>>...\n\n" + user, so only the user's end is. */
  const struct chat_message m2[3] = {{"system", " S "}, {"user", "  u  "}, {"assistant", "\ta\n"}};
  CHECK_STR_EQ(render(CHAT_TEMPLATE_LLAMA2, m2, 3, true),
               "<s>[INST] <<SYS>>\n S \n<</SYS>>\n\n  u [/INST] a </s>");
}

TEST(llama3_exact) {
  CHECK_STR_EQ(render(CHAT_TEMPLATE_LLAMA3, CONVO, 4, true),
               "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>"
               "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
               "<|start_header_id|>assistant<|end_header_id|>\n\nHi there.<|eot_id|>"
               "<|start_header_id|>user<|end_header_id|>\n\nHow are you?<|eot_id|>"
               "<|start_header_id|>assistant<|end_header_id|>\n\n");
  const struct chat_message m[1] = {{"user", "\n trimmed \n"}};
  CHECK_STR_EQ(render(CHAT_TEMPLATE_LLAMA3, m, 1, false),
               "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\ntrimmed<|eot_id|>");
  CHECK_STR_EQ(chat_template_end_of_turn(CHAT_TEMPLATE_LLAMA3), "<|eot_id|>");
}

TEST(chatml_exact) {
  CHECK_STR_EQ(render(CHAT_TEMPLATE_CHATML, CONVO, 4, true),
               "<|im_start|>system\nYou are helpful.<|im_end|>\n"
               "<|im_start|>user\nHello!<|im_end|>\n"
               "<|im_start|>assistant\nHi there.<|im_end|>\n"
               "<|im_start|>user\nHow are you?<|im_end|>\n"
               "<|im_start|>assistant\n");
  CHECK_STR_EQ(render(CHAT_TEMPLATE_CHATML, CONVO + 1, 1, false), "<|im_start|>user\nHello!<|im_end|>\n");
  CHECK(!chat_template_has_bos(CHAT_TEMPLATE_CHATML));
}

TEST(mistral_exact) {
  CHECK_STR_EQ(render(CHAT_TEMPLATE_MISTRAL, CONVO, 4, true),
               "<s>[INST] You are helpful.\n\nHello! [/INST]Hi there.</s>[INST] How are you? [/INST]");
  CHECK_STR_EQ(render(CHAT_TEMPLATE_MISTRAL, CONVO + 1, 3, true),
               "<s>[INST] Hello! [/INST]Hi there.</s>[INST] How are you? [/INST]");
}

TEST(zephyr_exact) {
  CHECK_STR_EQ(render(CHAT_TEMPLATE_ZEPHYR, CONVO, 4, true),
               "<|system|>\nYou are helpful.</s>\n<|user|>\nHello!</s>\n"
               "<|assistant|>\nHi there.</s>\n<|user|>\nHow are you?</s>\n<|assistant|>\n");
  CHECK_STR_EQ(render(CHAT_TEMPLATE_ZEPHYR, CONVO + 1, 1, false), "<|user|>\nHello!</s>\n");
}

TEST(raw_fallback_exact) {
  CHECK_STR_EQ(render(CHAT_TEMPLATE_RAW, CONVO, 4, true),
               "You are helpful.\nHello!\nHi there.\nHow are you?");
}

static int detect(const char *jinja, enum chat_template_kind *k) {
  return chat_template_detect(jinja, k, NULL, 0);
}

TEST(detect_families_from_jinja) {
  enum chat_template_kind k = CHAT_TEMPLATE_RAW;
  CHECK_EQ_INT(detect("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
                      "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}",
                      &k), REALM_OK);
  CHECK_EQ_INT(k, CHAT_TEMPLATE_CHATML);
  CHECK_EQ_INT(detect("{% set loop_messages = messages %}{% for message in loop_messages %}{% set "
                      "content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
                      "+ message['content'] | trim + '<|eot_id|>' %}{{ content }}{% endfor %}",
                      &k), REALM_OK);
  CHECK_EQ_INT(k, CHAT_TEMPLATE_LLAMA3);
  CHECK_EQ_INT(detect("{% if messages[0]['role'] == 'system' %}{% set system_message = "
                      "messages[0]['content'] %}{% endif %}{% set content = '<<SYS>>\\n' + "
                      "system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{{ bos_token + "
                      "'[INST] ' + content.strip() + ' [/INST]' }}",
                      &k), REALM_OK);
  CHECK_EQ_INT(k, CHAT_TEMPLATE_LLAMA2);
  CHECK_EQ_INT(detect("{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' "
                      "%}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% else %}{{ "
                      "message['content'] + eos_token }}{% endif %}{% endfor %}",
                      &k), REALM_OK);
  CHECK_EQ_INT(k, CHAT_TEMPLATE_MISTRAL);
  CHECK_EQ_INT(detect("{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ "
                      "'<|user|>\\n' + message['content'] + eos_token }}\n{% endif %}\n{% if "
                      "loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}",
                      &k), REALM_OK);
  CHECK_EQ_INT(k, CHAT_TEMPLATE_ZEPHYR);
  CHECK_EQ_INT(detect("llama3", &k), REALM_OK); /* a config may give the name */
  CHECK_EQ_INT(k, CHAT_TEMPLATE_LLAMA3);
}

TEST(detect_unknown_is_a_clear_error) {
  enum chat_template_kind k = CHAT_TEMPLATE_CHATML;
  char err[512] = "";
  CHECK_EQ_INT(chat_template_detect("{{ bos_token }}{% for m in messages %}<start_of_turn>", &k,
                                    err, sizeof err),
               REALM_E_UNSUPPORTED);
  CHECK_STR_CONTAINS(err, "{{ bos_token }}{% for m in messages %}");
  CHECK_STR_CONTAINS(err, "not a known family");
  CHECK_EQ_INT(k, CHAT_TEMPLATE_CHATML); /* untouched */
  CHECK_EQ_INT(chat_template_detect("", &k, err, sizeof err), REALM_E_UNSUPPORTED);
  CHECK_STR_CONTAINS(err, "no tokenizer.chat_template");
  CHECK_EQ_INT(chat_template_from_name("vicuna", &k, err, sizeof err), REALM_E_NOT_FOUND);
  CHECK_STR_CONTAINS(err, "\"vicuna\"");
  CHECK_EQ_INT(chat_template_from_name("zephyr", &k, err, sizeof err), REALM_OK);
  CHECK_EQ_INT(k, CHAT_TEMPLATE_ZEPHYR);
  CHECK_STR_EQ(chat_template_name(CHAT_TEMPLATE_MISTRAL), "mistral");
}

/* Reads the string value of tokenizer.chat_template from a GGUF file by locating the key
 * (this test needs only that one string, not a GGUF parser): key, u32 type 8 (string), u64
 * length, bytes. */
static char *gguf_chat_template(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  static char buf[1 << 21];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  const char key[] = "tokenizer.chat_template";
  for (size_t i = 0; i + sizeof key + 12 < n; i++) {
    if (memcmp(buf + i, key, sizeof key - 1) != 0) continue;
    const unsigned char *p = (const unsigned char *)buf + i + sizeof key - 1;
    uint32_t type = p[0] | p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    uint64_t len = 0;
    for (int b = 7; b >= 0; b--) len = len << 8 | p[4 + b];
    if (type != 8 || len > 65536 || (size_t)(p + 12 - (const unsigned char *)buf) + len > n) return NULL;
    char *s = malloc(len + 1);
    if (!s) return NULL;
    memcpy(s, p + 12, len);
    s[len] = '\0';
    return s;
  }
  return NULL;
}

TEST(detect_real_gguf_template_phi3_is_refused_by_name) {
  char path[1024];
  snprintf(path, sizeof path, "%s/vocab/ggml-vocab-phi-3.gguf", realm_test_models_dir());
  char *tmpl = gguf_chat_template(path);
  if (!tmpl) SKIP("ggml-vocab-phi-3.gguf with a chat template not found");
  enum chat_template_kind k;
  char err[512] = "";
  int r = chat_template_detect(tmpl, &k, err, sizeof err);
  int has_user = strstr(tmpl, "<|user|>") != NULL;
  free(tmpl);
  CHECK(has_user); /* it shares Zephyr's marker... */
  CHECK_EQ_INT(r, REALM_E_UNSUPPORTED); /* ...but is Phi-3, which closes turns with <|end|> */
  CHECK_STR_CONTAINS(err, "{{ bos_token }}");
}

TEST(unknown_role_and_bad_order_refused) {
  char err[256] = "";
  size_t len = 12345;
  const struct chat_message tool[2] = {{"user", "hi"}, {"tool", "x"}};
  CHECK_EQ_INT(chat_template_render(CHAT_TEMPLATE_CHATML, tool, 2, true, out, sizeof out, &len,
                                    err, sizeof err),
               REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "messages[1].role \"tool\"");
  CHECK_EQ_INT(len, 12345);
  const struct chat_message twice[3] = {{"user", "a"}, {"user", "b"}, {"assistant", "c"}};
  CHECK_EQ_INT(chat_template_render(CHAT_TEMPLATE_LLAMA2, twice, 3, true, out, sizeof out, &len,
                                    err, sizeof err),
               REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "messages[1].role");
  const struct chat_message late_sys[2] = {{"user", "a"}, {"system", "b"}};
  CHECK_EQ_INT(chat_template_render(CHAT_TEMPLATE_MISTRAL, late_sys, 2, true, out, sizeof out, &len,
                                    err, sizeof err),
               REALM_E_INVALID_ARGUMENT);
  const struct chat_message sys_only[1] = {{"system", "a"}};
  CHECK_EQ_INT(chat_template_render(CHAT_TEMPLATE_LLAMA2, sys_only, 1, true, out, sizeof out, &len,
                                    err, sizeof err),
               REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "at least one user message");
  const struct chat_message no_content[1] = {{"user", NULL}};
  CHECK_EQ_INT(chat_template_render(CHAT_TEMPLATE_CHATML, no_content, 1, true, out, sizeof out,
                                    &len, err, sizeof err),
               REALM_E_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(err, "messages[0].content");
  /* Roles in any order are fine for families that name the role in the text. */
  CHECK(render(CHAT_TEMPLATE_LLAMA3, twice, 3, true) != NULL);
}

TEST(output_bounded_by_size_limit) {
  char small[64];
  size_t len = 7;
  char err[256] = "";
  CHECK_EQ_INT(chat_template_render(CHAT_TEMPLATE_CHATML, CONVO, 4, true, small, sizeof small,
                                    &len, err, sizeof err),
               REALM_E_TOO_LARGE);
  CHECK_EQ_INT(len, 7);
  /* the message states the exact size needed; rendering into that many bytes succeeds */
  const char *need = strstr(err, "needs ");
  CHECK(need);
  size_t needed = (size_t)strtoul(need + 6, NULL, 10);
  CHECK(render(CHAT_TEMPLATE_CHATML, CONVO, 4, true));
  CHECK_EQ_INT(needed, strlen(out) + 1);
  char *exact = malloc(needed);
  CHECK(exact);
  int r = chat_template_render(CHAT_TEMPLATE_CHATML, CONVO, 4, true, exact, needed, &len, NULL, 0);
  free(exact);
  CHECK_EQ_INT(r, REALM_OK);
  CHECK_EQ_INT(len, needed - 1);
}
