/*
 * limits.h — every hard limit in Realm, in one place.
 *
 * Anything that comes from outside a process (HTTP bodies, protobuf frames, GGUF fields,
 * guest pointers, tenant configs) is checked against one of these before it is used. Values
 * are deliberately generous for real models and tight enough that a hostile input cannot make
 * a process allocate or loop without bound. Sections are owned by the module named.
 */
#ifndef REALM_LIMITS_H
#define REALM_LIMITS_H

/* ---- transport (common/ipc) ---- */
#define REALM_MAX_FRAME_BYTES (16u << 20)      /* one protobuf frame on ZeroMQ */
#define REALM_MAX_INLINE_TENSOR_BYTES (64u << 20) /* tcp:// peers: tensor bytes carried inline */
#define REALM_MAX_SHM_BYTES (1ull << 32)        /* one connection's shared region */
#define REALM_MAX_IDENTITY_BYTES 255            /* ZeroMQ routing id */

/* ---- model files (compute-worker/model) ---- */
#define REALM_GGUF_MAX_FILE_BYTES (256ull << 30)  /* 256 GiB */
#define REALM_GGUF_MAX_KV 65536                   /* metadata pairs */
#define REALM_GGUF_MAX_TENSORS 65536
#define REALM_GGUF_MAX_STRING_BYTES (1u << 20)    /* one key or string value */
#define REALM_GGUF_MAX_KEY_BYTES 256
#define REALM_GGUF_MAX_TENSOR_NAME_BYTES 256
#define REALM_GGUF_MAX_ARRAY_ELEMS (1ull << 24)   /* e.g. vocab tokens, merges */
#define REALM_GGUF_MAX_DIM (1ull << 32)           /* one tensor dimension */
#define REALM_GGUF_MAX_ALIGNMENT 65536

/* ---- model architecture (compute-worker/engine) ---- */
#define REALM_MAX_LAYERS 512
#define REALM_MAX_EMBD 65536
#define REALM_MAX_HEADS 1024
#define REALM_MAX_VOCAB (1u << 20)
#define REALM_MAX_CONTEXT (1u << 20)

/* ---- worker sessions and batching (compute-worker) ---- */
#define REALM_MAX_BATCH_SEQS 256                 /* sequences in one step */
#define REALM_MAX_STEP_TOKENS 8192               /* tokens in one forward pass */
#define REALM_MAX_SESSIONS_PER_CONN 4096
#define REALM_MAX_OPEN_QUEUE 65536               /* SessionOpens waiting for KV pages */

/* ---- tenant guests (tenant-runner) ---- */
#define REALM_GUEST_DEFAULT_MEMORY_BYTES (256u << 20)
#define REALM_GUEST_MAX_MODULE_BYTES (64u << 20)
#define REALM_GUEST_DEFAULT_CALL_MS 200
#define REALM_GUEST_MAX_OUTPUT_BYTES (4u << 20)  /* text one request may emit */
#define REALM_GUEST_MAX_ACTIVE_REQUESTS 1024     /* requests open in one instance */
#define REALM_GUEST_MAX_TABLE_ELEMS (1u << 20)   /* funcref/externref table entries */

/* ---- gateway (HTTP) ---- */
#define REALM_HTTP_MAX_BODY_BYTES (4u << 20)
#define REALM_HTTP_MAX_HEADER_BYTES (16u << 10)
#define REALM_HTTP_MAX_CONNECTIONS 1024
#define REALM_HTTP_CONNECTION_TIMEOUT_S 30
#define REALM_MAX_PROMPT_TOKENS 131072
#define REALM_MAX_COMPLETION_TOKENS 32768
#define REALM_MAX_STOP_SEQUENCES 4
#define REALM_MAX_STOP_SEQUENCE_BYTES 256
#define REALM_MAX_MESSAGES 1024
#define REALM_MAX_TENANTS 4096
#define REALM_MAX_KEYS_PER_TENANT 64

#endif /* REALM_LIMITS_H */
