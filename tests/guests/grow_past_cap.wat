;; Malicious: grows memory far past the instance cap; when memory.grow returns -1 it
;; traps, so the call fails and the error carries the host's note about the memory cap.
;; A grow within the cap must succeed first (returns the old page count, 1).
(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "realm_abi_version") (result i32) (i32.const 1))
  ;; bump allocator, no reuse: enough for a test guest
  (func (export "realm_alloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.and (i32.add (i32.add (global.get $heap) (local.get $n)) (i32.const 7)) (i32.const -8)))
    (local.get $p))
  (func (export "realm_on_logits") (param i32 i32 i32) (result i32) (i32.const -100))
  (func (export "realm_on_request_end") (param i32 i32))
  (func (export "realm_on_request_begin") (param $id i32) (param $p i32) (param $len i32) (result i32)
    (if (i32.ne (memory.grow (i32.const 1)) (i32.const 1)) (then (return (i32.const -1))))
    (if (i32.eq (memory.grow (i32.const 4096)) (i32.const -1)) (then unreachable))
    (i32.const 0))
)
