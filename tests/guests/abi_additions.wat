;; Exercises the imports added to ABI v1 after its first release (model_meta, merge_count,
;; merge, emit_top_logprobs, finish) and writes every return code where the test can see it:
;; it feeds them to the host as "tokens" (realm_feed_tokens copies i32s out), so the recording
;; host sees exactly what the guest got back, including the defaults of a host without the
;; new callbacks. Request id 99 passes a bad pointer to emit_top_logprobs and id 98 calls
;; finish with a request id that is not active (both guest bugs: the call must fail).
(module
  (import "realm" "emit_text" (func $emit_text (param i32 i32 i32) (result i32)))
  (import "realm" "emit_token" (func $emit_token (param i32 i32 f32 i32 i32) (result i32)))
  (import "realm" "feed_tokens" (func $feed_tokens (param i32 i32 i32) (result i32)))
  (import "realm" "model_meta" (func $model_meta (param i32 i32 i32 i32) (result i32)))
  (import "realm" "merge_count" (func $merge_count (result i32)))
  (import "realm" "merge" (func $merge (param i32 i32 i32) (result i32)))
  (import "realm" "emit_top_logprobs" (func $emit_top (param i32 i32 i32) (result i32)))
  (import "realm" "finish" (func $finish (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "tokenizer.ggml.pre")   ;; 18 bytes
  (data (i32.const 40) "no.such")              ;; 7 bytes
  ;; two alternatives at an odd address (the host must not assume alignment):
  ;; {1, -0.5f}, {2, -1.5f}
  (data (i32.const 701) "\01\00\00\00\00\00\00\bf\02\00\00\00\00\00\c0\bf")
  (data (i32.const 800) "x")
  (global $heap (mut i32) (i32.const 4096))
  (func (export "realm_abi_version") (result i32) (i32.const 1))
  (func (export "realm_alloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.and (i32.add (i32.add (global.get $heap) (local.get $n)) (i32.const 7)) (i32.const -8)))
    (local.get $p))
  ;; results[0..9) at 256, fed to the host at the end
  (func (export "realm_on_request_begin") (param $id i32) (param $p i32) (param $len i32) (result i32)
    (local $r i32)
    ;; [0] a known key into a 64-byte buffer; its value is emitted as text
    (local.set $r (call $model_meta (i32.const 16) (i32.const 18) (i32.const 512) (i32.const 64)))
    (i32.store (i32.const 256) (local.get $r))
    (if (i32.and (i32.gt_s (local.get $r) (i32.const 0)) (i32.le_s (local.get $r) (i32.const 64)))
      (then (drop (call $emit_text (local.get $id) (i32.const 512) (local.get $r)))))
    ;; [1] a key the model does not have
    (i32.store (i32.const 260) (call $model_meta (i32.const 40) (i32.const 7) (i32.const 512) (i32.const 64)))
    ;; [2] a buffer too small: the length comes back, [3] nothing was written at 580
    (i32.store (i32.const 264) (call $model_meta (i32.const 16) (i32.const 18) (i32.const 580) (i32.const 2)))
    (i32.store (i32.const 268) (i32.load8_u (i32.const 580)))
    ;; [4] merge count, [5] merge 0 (emitted as text), [6] a merge past the end
    (i32.store (i32.const 272) (call $merge_count))
    (local.set $r (call $merge (i32.const 0) (i32.const 600) (i32.const 64)))
    (i32.store (i32.const 276) (local.get $r))
    (if (i32.and (i32.gt_s (local.get $r) (i32.const 0)) (i32.le_s (local.get $r) (i32.const 64)))
      (then (drop (call $emit_text (local.get $id) (i32.const 600) (local.get $r)))))
    (i32.store (i32.const 280) (call $merge (i32.const 99) (i32.const 600) (i32.const 64)))
    ;; [7] a finish reason that does not exist, [8] an empty metadata key
    (i32.store (i32.const 284) (call $finish (local.get $id) (i32.const 9)))
    (i32.store (i32.const 288) (call $model_meta (i32.const 16) (i32.const 0) (i32.const 512) (i32.const 64)))
    (drop (call $feed_tokens (local.get $id) (i32.const 256) (i32.const 9)))
    (i32.const 0))
  ;; one token with two alternatives, then finish "length" and stop; results at 900
  (func (export "realm_on_logits") (param $id i32) (param $ptr i32) (param $n i32) (result i32)
    (if (i32.eq (local.get $id) (i32.const 99))
      (then (drop (call $emit_top (local.get $id) (i32.const 0xfffffff0) (i32.const 2)))))
    (if (i32.eq (local.get $id) (i32.const 98))
      (then (drop (call $finish (i32.const 12345) (i32.const 1)))))
    (drop (call $emit_token (local.get $id) (i32.const 1) (f32.const -0.5) (i32.const 800) (i32.const 1)))
    (i32.store (i32.const 900) (call $emit_top (local.get $id) (i32.const 701) (i32.const 2)))
    (i32.store (i32.const 904) (call $emit_top (local.get $id) (i32.const 701) (i32.const 21)))
    (i32.store (i32.const 908) (call $finish (local.get $id) (i32.const 2)))
    (drop (call $feed_tokens (local.get $id) (i32.const 900) (i32.const 3)))
    (i32.const -100))
  (func (export "realm_on_request_end") (param i32 i32))
)
