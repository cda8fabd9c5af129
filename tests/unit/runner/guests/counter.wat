;; Test guest for the runner's idle pool of guest instances: it counts, in a global that lives
;; as long as its instance, the requests the instance has begun (the runner's warm-up request
;; included), and answers each request with that count as one text byte ('0' + count) and an
;; immediate stop on the first logits row. A request whose prompt starts with 'T' traps
;; (unreachable) in realm_on_logits instead. Every request_begin also emits a text byte "w"
;; before feeding: a warm-up request that leaked events would show it to the gateway.
;; Prompt byte offset: the runner puts the PROMPT field first in the request blob, so its first
;; value byte is at blob+20 (see moody.wat).
(module
  (import "realm" "feed_tokens" (func $feed_tokens (param i32 i32 i32) (result i32)))
  (import "realm" "emit_text" (func $emit_text (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 32) "\01\00\00\00")   ;; token 1 at 32
  (data (i32.const 48) "w")
  (global $heap (mut i32) (i32.const 8192))
  (global $served (mut i32) (i32.const 0))
  (global $trap (mut i32) (i32.const 0))
  (func (export "realm_abi_version") (result i32) (i32.const 1))
  (func (export "realm_alloc") (param $n i32) (result i32) (local $p i32) (local $end i32)
    (local.set $p (global.get $heap))
    (local.set $end (i32.and (i32.add (i32.add (local.get $p) (local.get $n)) (i32.const 7)) (i32.const -8)))
    (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (if (i32.eq (memory.grow (i32.add (i32.shr_u (i32.sub (local.get $end) (i32.mul (memory.size) (i32.const 65536))) (i32.const 16)) (i32.const 1)))
                    (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $heap (local.get $end))
    (local.get $p))
  (func (export "realm_on_request_begin") (param $id i32) (param $p i32) (param $len i32) (result i32)
    (global.set $served (i32.add (global.get $served) (i32.const 1)))
    (global.set $trap (i32.const 0))
    (if (i32.gt_u (local.get $len) (i32.const 20))
      (then (if (i32.eq (i32.load8_u (i32.add (local.get $p) (i32.const 20))) (i32.const 84)) ;; 'T'
        (then (global.set $trap (i32.const 1))))))
    ;; The host may drop "w" (it is held for a token event that never comes); it must never
    ;; reach the gateway for the warm-up.
    (drop (call $emit_text (local.get $id) (i32.const 48) (i32.const 1)))
    (drop (call $feed_tokens (local.get $id) (i32.const 32) (i32.const 1)))
    (i32.const 0))
  (func (export "realm_on_logits") (param $id i32) (param $ptr i32) (param $n i32) (result i32)
    (if (global.get $trap) (then unreachable))
    (i32.store8 (i32.const 56) (i32.add (i32.const 48) (global.get $served)))
    (drop (call $emit_text (local.get $id) (i32.const 56) (i32.const 1)))
    (i32.const -100)) ;; REALM_GUEST_STOP
  (func (export "realm_on_request_end") (param i32 i32))
)
