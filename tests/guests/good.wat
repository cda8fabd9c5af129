;; Well-behaved test guest: greets, feeds token 1, then samples greedily (argmax) until it has
;; produced 3 tokens, emitting each token's piece (or "?" when the host has no vocabulary).
;; Used after every malicious module to prove the host process still runs guests correctly.
(module
  (import "realm" "emit_text" (func $emit_text (param i32 i32 i32) (result i32)))
  (import "realm" "emit_token" (func $emit_token (param i32 i32 f32 i32 i32) (result i32)))
  (import "realm" "feed_tokens" (func $feed_tokens (param i32 i32 i32) (result i32)))
  (import "realm" "token_piece" (func $token_piece (param i32 i32 i32) (result i32)))
  (import "realm" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello: ")        ;; 7 bytes at 16
  (data (i32.const 32) "\01\00\00\00")   ;; token 1 at 32
  (data (i32.const 40) "?")
  (data (i32.const 48) "good guest began a request")  ;; 26 bytes
  (global $heap (mut i32) (i32.const 4096))
  (global $produced (mut i32) (i32.const 0))
  (func (export "realm_abi_version") (result i32) (i32.const 1))
  ;; bump allocator that grows memory when needed; 0 when growth is refused
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
    (call $log (i32.const 2) (i32.const 48) (i32.const 26))
    (drop (call $emit_text (local.get $id) (i32.const 16) (i32.const 7)))
    (global.set $produced (i32.const 0))
    (drop (call $feed_tokens (local.get $id) (i32.const 32) (i32.const 1)))
    (i32.const 0))
  ;; argmax over n floats at $ptr; emits the token's piece into a 64-byte buffer at 64
  (func (export "realm_on_logits") (param $id i32) (param $ptr i32) (param $n i32) (result i32)
    (local $i i32) (local $best i32) (local $bestv f32) (local $v f32) (local $plen i32)
    (if (i32.ge_u (global.get $produced) (i32.const 3)) (then (return (i32.const -100))))
    (local.set $bestv (f32.load (local.get $ptr)))
    (local.set $i (i32.const 1))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $v (f32.load (i32.add (local.get $ptr) (i32.shl (local.get $i) (i32.const 2)))))
        (if (f32.gt (local.get $v) (local.get $bestv))
          (then (local.set $bestv (local.get $v)) (local.set $best (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.set $plen (call $token_piece (local.get $best) (i32.const 64) (i32.const 64)))
    (if (i32.or (i32.lt_s (local.get $plen) (i32.const 0)) (i32.gt_s (local.get $plen) (i32.const 64)))
      (then (drop (call $emit_token (local.get $id) (local.get $best) (local.get $bestv) (i32.const 40) (i32.const 1))))
      (else (drop (call $emit_token (local.get $id) (local.get $best) (local.get $bestv) (i32.const 64) (local.get $plen)))))
    (global.set $produced (i32.add (global.get $produced) (i32.const 1)))
    (local.get $best))
  (func (export "realm_on_request_end") (param i32 i32))
)
