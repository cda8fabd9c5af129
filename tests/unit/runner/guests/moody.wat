;; Test guest for the runner: well-behaved or hostile depending on the first byte of the
;; prompt (the runner puts the PROMPT field first in the request blob, so its first value
;; byte is at blob+20). A runner has one module, so one guest must offer every misbehaviour
;; the runner-level isolation tests need:
;;   'O'  out-of-bounds read in realm_on_request_begin (trap out_of_bounds)
;;   'L'  infinite loop in realm_on_logits (deadline)
;;   'R'  unbounded recursion in realm_on_logits (trap stack_exhausted)
;;   'G'  memory.grow by 4096 pages (256 MiB) in realm_on_logits; a refused grow (the runner's
;;        --guest-memory cap) ends in unreachable, so the error carries the cap note
;;   'P'  a pointer outside its memory passed to realm_emit_text in realm_on_logits
;;   'E'  emits 1 KiB of text in an endless loop in realm_on_logits (output cap)
;;   'F'  feeds 64 prompt tokens (for the prompt-size limit)
;;   else feeds token 1 and samples greedily (argmax), emitting each token's piece, never
;;        stopping on its own (the runner's max_tokens ends the request).
;; The hostile on_logits modes strike on the first logits row, so the request has a worker
;; session and rides in the same Step as any concurrent good request when it fails.
;; One instance serves one request at a time in the runner, so plain globals hold the request
;; state; request_begin resets the mode because the runner may reuse an instance after a
;; clean request end.
(module
  (import "realm" "emit_token" (func $emit_token (param i32 i32 f32 i32 i32) (result i32)))
  (import "realm" "feed_tokens" (func $feed_tokens (param i32 i32 i32) (result i32)))
  (import "realm" "token_piece" (func $token_piece (param i32 i32 i32) (result i32)))
  (import "realm" "emit_text" (func $emit_text (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 32) "\01\00\00\00")   ;; token 1 at 32
  (data (i32.const 40) "?")
  (global $heap (mut i32) (i32.const 8192))
  (global $mode (mut i32) (i32.const 0))
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
    (local $c i32) (local $i i32)
    (global.set $mode (i32.const 0)) ;; an instance the runner reuses starts well-behaved
    (if (i32.gt_u (local.get $len) (i32.const 20))
      (then (local.set $c (i32.load8_u (i32.add (local.get $p) (i32.const 20))))))
    (if (i32.eq (local.get $c) (i32.const 79)) ;; 'O'
      (then (drop (i32.load (i32.const 0x7ffffff0)))))
    (if (i32.eq (local.get $c) (i32.const 76)) ;; 'L'
      (then (global.set $mode (i32.const 1))))
    (if (i32.eq (local.get $c) (i32.const 82)) ;; 'R'
      (then (global.set $mode (i32.const 2))))
    (if (i32.eq (local.get $c) (i32.const 71)) ;; 'G'
      (then (global.set $mode (i32.const 3))))
    (if (i32.eq (local.get $c) (i32.const 80)) ;; 'P'
      (then (global.set $mode (i32.const 4))))
    (if (i32.eq (local.get $c) (i32.const 69)) ;; 'E'
      (then (global.set $mode (i32.const 5))))
    (if (i32.eq (local.get $c) (i32.const 70)) ;; 'F': 64 x token 1 at 256
      (then
        (block $done (loop $fill
          (br_if $done (i32.ge_u (local.get $i) (i32.const 64)))
          (i32.store (i32.add (i32.const 256) (i32.shl (local.get $i) (i32.const 2))) (i32.const 1))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $fill)))
        (drop (call $feed_tokens (local.get $id) (i32.const 256) (i32.const 64)))
        (return (i32.const 0))))
    (drop (call $feed_tokens (local.get $id) (i32.const 32) (i32.const 1)))
    (i32.const 0))
  (func (export "realm_on_logits") (param $id i32) (param $ptr i32) (param $n i32) (result i32)
    (local $i i32) (local $best i32) (local $bestv f32) (local $v f32) (local $plen i32)
    (if (i32.eq (global.get $mode) (i32.const 1))
      (then (loop $forever (br $forever))))
    (if (i32.eq (global.get $mode) (i32.const 2))
      (then (drop (call $recurse (i32.const 0)))))
    (if (i32.eq (global.get $mode) (i32.const 3))
      (then (if (i32.eq (memory.grow (i32.const 4096)) (i32.const -1)) (then unreachable))))
    (if (i32.eq (global.get $mode) (i32.const 4))
      (then (drop (call $emit_text (local.get $id) (i32.const 0xfffff000) (i32.const 0x2000)))))
    (if (i32.eq (global.get $mode) (i32.const 5))
      (then (loop $flood
        (drop (call $emit_text (local.get $id) (i32.const 0) (i32.const 1024)))
        (br $flood))))
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
    (local.get $best))
  (func (export "realm_on_request_end") (param i32 i32))
  (func $recurse (param $d i32) (result i32)
    (i32.add (call $recurse (i32.add (local.get $d) (i32.const 1))) (i32.const 1)))
)
