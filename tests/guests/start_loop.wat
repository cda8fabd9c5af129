;; Malicious: its start function (run during instantiation) spins forever while calling the
;; host's log with an empty message: instantiation itself must hit the deadline.
(module
  (import "realm" "log" (func $log (param i32 i32 i32)))
  (start $spin)
  (func $spin (loop $forever (call $log (i32.const 2) (i32.const 0) (i32.const 0)) (br $forever)))
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
    (loop $forever (br $forever))
    (i32.const 0))
)
