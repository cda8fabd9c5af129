#!/usr/bin/env python3
"""run_stack.py — the orchestrating half of the whole-stack benchmarks (docs/benchmarks-stack.md).

Starts the real stack with `realmctl up` (realm-worker, one jailed realm-runner per tenant with
the default WASM guest, realm-gateway) on a free loopback port, drives it and writes, per
benchmark, a JSON result and a PNG plot (gnuplot) into the output directory:

  isolation  stack_bench isolation: engine in-process vs worker socket vs HTTP through the
             whole stack, interleaved rounds, medians and overheads.
  scaling    1, 2, 4, 8, 16 tenants (each its own runner, added at run time with
             `realmctl tenant add` + SIGHUP to up, the operator's onboarding path), one
             stream each at once (stack_bench streams); after each level the memory of every
             process is read from /proc/PID/smaps_rollup. So `scaling` also yields `memory`.
  memory     the same run as scaling (one stack, tenants growing); asking for either runs both.
  gateway    wrk on loopback: a rate-limited tenant's POST answered 429, and GET /v1/models.

Usage: run_stack.py --build BUILD_DIR --out OUT_DIR [--only NAME[,NAME]] [--threads N]
                    [--rounds N] [--max-tokens N] [--tenants 1,2,4,8,16] [--shape S] [--type T]
                    [--wrk-seconds N] [--wrk-connections N]
scripts/bench.sh is the entry point (it builds, installs wrk and gnuplot when missing, and calls
this). Every process started here lives in a process group that is killed on exit, whatever the
exit (normal, exception, SIGINT, SIGTERM); every wait has a deadline.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VOCAB = os.path.join(os.environ.get('REALM_MODELS_DIR', os.path.join(ROOT, '..', 'shared', 'models')),
                     'vocab', 'ggml-vocab-llama-spm.gguf')
MODEL_NAME = 'default'

STACKS = []  # live Stack objects, killed by cleanup()


def log(msg):
    print(f'[bench {time.strftime("%H:%M:%S")}] {msg}', flush=True)


def cleanup(*_):
    for s in list(STACKS):
        s.stop()


def on_signal(signum, _frame):
    cleanup()
    sys.exit(128 + signum)


class Stack:
    """One `realmctl up` in its own process group, with its JSON events (fd 3) and log."""

    def __init__(self, args, name, config):
        self.args, self.name = args, name
        self.dir = tempfile.mkdtemp(prefix=f'rsb-{name}-', dir='/tmp')  # short: ipc path limit
        self.events, self.cv = [], threading.Condition()
        cfg_path = os.path.join(self.dir, 'up.json')
        with open(cfg_path, 'w') as f:
            json.dump(config, f)
        self.logf = open(os.path.join(args.out, f'{name}-up.log'), 'w')
        rfd, wfd = os.pipe()  # up's JSON events; wfd keeps its number in the child (pass_fds)
        cmd = [args.realmctl, 'up', '--config', cfg_path, '--model', args.model,
               '--state-dir', self.dir, '--module-cache', args.module_cache, '--port', '0',
               '--ready-fd', str(wfd), '--ready-timeout', '120']
        env = dict(os.environ, REALM_LOG_FORMAT='text')  # info: up reads the ready lines
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, pass_fds=(wfd,), env=env,
                                     start_new_session=True)
        os.close(wfd)
        STACKS.append(self)
        threading.Thread(target=self._read_events, args=(rfd,), daemon=True).start()
        ready = self.wait_event(lambda e: e.get('event') == 'ready', 180, 'the stack to be ready')
        self.port, self.keys = ready['port'], dict(ready.get('keys', {}))
        self.pids = {c['name']: c['pid'] for c in ready.get('children', [])}
        log(f'{name}: stack ready on port {self.port} ({len(self.pids)} processes)')

    def _read_events(self, rfd):
        with os.fdopen(rfd) as f:
            for line in f:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                with self.cv:
                    self.events.append(ev)
                    if ev.get('event') == 'start':
                        self.pids_update(ev)
                    self.cv.notify_all()

    def pids_update(self, ev):
        if hasattr(self, 'pids'):
            self.pids[ev['name']] = ev['pid']

    def wait_event(self, pred, timeout, what, since=0):
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                for ev in self.events[since:]:
                    if pred(ev):
                        return ev
                if self.proc.poll() is not None:
                    raise RuntimeError(f'{self.name}: realmctl up exited ({self.proc.returncode}) '
                                       f'while waiting for {what}; see {self.logf.name}')
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f'{self.name}: timed out after {timeout} s waiting for {what}')
                self.cv.wait(min(left, 0.5))

    def add_tenant(self, tid, extra=()):
        """realmctl tenant add + SIGHUP to up; returns the new key once up says reloaded."""
        out = subprocess.run([self.args.realmctl, 'tenant', 'add', tid, '--models', MODEL_NAME,
                              *extra, '--file', os.path.join(self.dir, 'tenants.json')],
                             check=True, capture_output=True, text=True, timeout=30)
        key = out.stdout.strip().splitlines()[-1]
        with self.cv:
            since = len(self.events)
        os.kill(self.proc.pid, signal.SIGHUP)
        ev = self.wait_event(lambda e: e.get('event') == 'reloaded', 120, f'reload adding {tid}', since)
        if not ev.get('ok', False):
            raise RuntimeError(f'reload adding {tid} failed: {ev.get("error")}')
        self.keys[tid] = key
        return key

    def worker_endpoint(self):
        argv = open(f'/proc/{self.pids["worker"]}/cmdline', 'rb').read().split(b'\0')
        for i, a in enumerate(argv):
            if a == b'--listen':
                return argv[i + 1].decode().split(',')[0]
            if a.startswith(b'--listen='):
                return a[9:].decode().split(',')[0]
        raise RuntimeError('worker command line has no --listen')

    def stop(self):
        if self not in STACKS:
            return
        STACKS.remove(self)
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
            os.killpg(self.proc.pid, signal.SIGKILL)  # anything left in the group
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.logf.close()
        subprocess.run(['rm', '-rf', self.dir], check=False)


def base_config(args, tenants, worker_args=()):
    return {
        'model': {'name': MODEL_NAME},
        'gateway': {'listen': '127.0.0.1', 'port': 0},
        'worker': {'threads': args.threads, 'args': list(worker_args)},
        'supervisor': {'backoff_ms': 100, 'max_backoff_ms': 1000, 'healthy_after_ms': 2000,
                       'stop_grace_ms': 3000},
        'tenants': tenants,
    }


def gnuplot(script, out_png):
    subprocess.run(['gnuplot'], input=script, text=True, check=True, timeout=60)
    log(f'plot: {out_png}')


def median(v):
    v = sorted(v)
    n = len(v)
    return float('nan') if n == 0 else (v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2]))


# ---- isolation ----------------------------------------------------------------------------

def bench_isolation(args):
    st = Stack(args, 'isolation', base_config(args, [{'id': 'iso', 'replicas': 1}]))
    try:
        out = os.path.join(args.out, 'isolation.json')
        subprocess.run([args.stack_bench, 'isolation', '--model', args.model,
                        '--worker', st.worker_endpoint(), '--port', str(st.port),
                        '--key', st.keys['iso'], '--threads', str(args.threads),
                        '--rounds', str(args.rounds), '--max-tokens', str(args.max_tokens),
                        '--ban-token', str(args.ban_token),
                        '--pids', ','.join(f'{re.sub(r"[^A-Za-z0-9]", "_", n)}={p}'
                                           for n, p in st.pids.items()),
                        '--out', out], check=True, timeout=600)
    finally:
        st.stop()
    res = json.load(open(out))
    # CPU per request by process, medians over rounds: the worker's share is the same compute
    # as the engine's; what the stack adds is the runner, the gateway and the HTTP client.
    cpu = {}
    for mode in ('engine', 'socket', 'stack'):
        each = [smp['cpu_each_ms'] for smp in res['samples'] if smp['mode'] == mode]
        cpu[mode] = {name: median([e[name] for e in each]) for name in each[0]}
    st_cpu = cpu['stack']
    worker = sum(v for k, v in st_cpu.items() if k.startswith('worker'))
    added = sum(v for k, v in st_cpu.items() if not k.startswith('worker'))
    res['cpu_by_process_ms'] = cpu
    res['stack_added_cpu_pct_of_worker'] = 100.0 * added / worker if worker else float('nan')
    with open(out, 'w') as f:
        json.dump(res, f)
    dat = os.path.join(args.out, 'isolation.dat')
    by = {}
    for s in res['samples']:
        by.setdefault(s['round'], {})[s['mode']] = s
    with open(dat, 'w') as f:
        f.write('# round engine_tps socket_tps stack_tps engine_ttft socket_ttft stack_ttft\n')
        for r in sorted(by):
            m = by[r]
            f.write(f"{r} {m['engine']['decode_tps']} {m['socket']['decode_tps']} "
                    f"{m['stack']['decode_tps']} {m['engine']['ttft_ms']} {m['socket']['ttft_ms']} "
                    f"{m['stack']['ttft_ms']}\n")
    cdf = os.path.join(args.out, 'isolation-gaps.dat')
    with open(cdf, 'w') as f:
        # One block per mode: sorted inter-token gaps and their cumulative fraction.
        for mode in ('engine', 'socket', 'stack'):
            g = sorted(x for smp in res['samples'] if smp['mode'] == mode
                       for x in smp['gaps_ms'] if x is not None)
            f.write(f'# {mode}\n')
            f.write(''.join(f'{x} {(i + 1) / len(g)}\n' for i, x in enumerate(g)))
            f.write('\n\n')
    png = os.path.join(args.out, 'isolation.png')
    gnuplot(f"""
set terminal pngcairo noenhanced size 1200,380 font ',9'
set output '{png}'
set multiplot layout 1,3 title 'Isolation overhead: {os.path.basename(args.model)}, {res['backend']}, {args.threads} thread(s), {res['prompt_tokens']}-token prompt, {res['max_tokens']} tokens, interleaved rounds'
set xlabel 'round'; set grid; set key bottom right
set ylabel 'decode tokens/s'; set yrange [0:*]
plot '{dat}' u 1:2 w lp t 'engine (in-process)', '' u 1:3 w lp t 'worker socket', '' u 1:4 w lp t 'HTTP→gateway→runner(WASM)→worker'
set ylabel 'time to first token (ms)'
plot '{dat}' u 1:5 w lp t 'engine', '' u 1:6 w lp t 'worker socket', '' u 1:7 w lp t 'full stack'
set xlabel 'inter-token gap (ms)'; set ylabel 'fraction of tokens'; set yrange [0:1]; set key bottom right
set logscale x
plot '{cdf}' index 0 u 1:2 w l lw 2 t 'engine', '' index 1 u 1:2 w l lw 2 t 'worker socket', '' index 2 u 1:2 w l lw 2 t 'full stack'
unset multiplot
""", png)
    return res


# ---- scaling + memory -----------------------------------------------------------------------

SMAPS_FIELDS = ('Rss', 'Pss', 'Pss_Anon', 'Pss_File', 'Pss_Shmem', 'Shared_Clean', 'Shared_Dirty',
                'Private_Clean', 'Private_Dirty')


def smaps_rollup(pid):
    """kB fields of /proc/PID/smaps_rollup, plus memfd mappings by name from /proc/PID/maps."""
    out = {}
    with open(f'/proc/{pid}/smaps_rollup') as f:
        for line in f:
            m = re.match(r'(\w+):\s+(\d+) kB', line)
            if m and m.group(1) in SMAPS_FIELDS:
                out[m.group(1)] = int(m.group(2))
    memfd = {}
    with open(f'/proc/{pid}/maps') as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and 'memfd:' in parts[5]:
                lo, hi = (int(x, 16) for x in parts[0].split('-'))
                name = parts[5].strip().split(' (deleted)')[0]
                memfd[name] = memfd.get(name, 0) + (hi - lo) // 1024
    out['memfd_kb'] = memfd
    return out


def memory_snapshot(st):
    snap = {'worker': None, 'gateway': None, 'runners': {}}
    for name, pid in st.pids.items():
        try:
            m = smaps_rollup(pid)
        except OSError:
            continue
        if name == 'worker':
            snap['worker'] = m
        elif name == 'gateway':
            snap['gateway'] = m
        elif name.startswith('runner '):
            snap['runners'][name] = m
    return snap


def bench_scaling(args):
    levels = [int(x) for x in args.tenants.split(',')]
    tids = [f't{i:02d}' for i in range(1, max(levels) + 1)]
    # KV: every tenant's stream needs prompt + max_tokens positions; give the pool room for all.
    worker_args = ['--kv-blocks', str(max(levels) * ((args.max_tokens + 64) // 16 + 2) + 16)]
    st = Stack(args, 'scaling', base_config(args, [{'id': tids[0], 'replicas': 1}], worker_args))
    rows = []
    try:
        have = 1
        for n in levels:
            t0 = time.monotonic()
            while have < n:
                st.add_tenant(tids[have])
                have += 1
            if time.monotonic() - t0 > 0.1:
                log(f'scaling: {n} tenants running (added in {time.monotonic() - t0:.1f} s)')
            keys = os.path.join(args.out, f'keys-{n}.txt')
            with open(keys, 'w') as f:
                f.write(''.join(st.keys[t] + '\n' for t in tids[:n]))
            out = os.path.join(args.out, f'streams-{n}.json')
            idle = memory_snapshot(st)  # tenants present, nothing in flight yet at this level
            subprocess.run([args.stack_bench, 'streams', '--port', str(st.port), '--keys', keys,
                            '--max-tokens', str(args.max_tokens), '--out', out],
                           check=True, timeout=300)
            os.unlink(keys)
            res = json.load(open(out))
            mem = memory_snapshot(st)
            res['tenants'] = n
            res['memory'] = mem
            res['memory_idle'] = idle
            rows.append(res)
    finally:
        st.stop()
    # Baseline: the engine alone decoding n sequences in one pass (same thread count), run
    # after the stack stopped so the two never share the cores.
    eb_out = os.path.join(args.out, 'engine-batch.json')
    subprocess.run([args.stack_bench, 'engine-batch', '--model', args.model, '--threads',
                    str(args.threads), '--batches', args.tenants, '--prompt-tokens', '14',
                    '--steps', str(args.max_tokens), '--out', eb_out], check=True, timeout=300)
    eb = {lv['batch']: lv['aggregate_tps'] for lv in json.load(open(eb_out))['levels']}
    for r in rows:
        r['engine_batch_tps'] = eb.get(r['tenants'], float('nan'))
        r['stack_vs_engine_batch'] = r['aggregate_tps'] / r['engine_batch_tps']
    scaling = {'bench': 'scaling', 'model': args.model, 'threads': args.threads,
               'max_tokens': args.max_tokens, 'levels': rows}
    with open(os.path.join(args.out, 'scaling.json'), 'w') as f:
        json.dump({k: v for k, v in scaling.items()} | {'levels': [
            {k: v for k, v in r.items() if k != 'memory'} for r in rows]}, f, indent=1)

    # Memory: MB per process and the slope of the total PSS over the tenant count.
    mem_rows = []
    for r in rows:
        m = r['memory']
        runners = list(m['runners'].values())
        w = m['worker'] or {}
        g = m['gateway'] or {}
        row = {'tenants': r['tenants'],
               'worker_rss_mb': w.get('Rss', 0) / 1024, 'worker_pss_mb': w.get('Pss', 0) / 1024,
               'gateway_rss_mb': g.get('Rss', 0) / 1024, 'gateway_pss_mb': g.get('Pss', 0) / 1024,
               'runners': len(runners),
               'runner_rss_mb_mean': sum(x['Rss'] for x in runners) / max(1, len(runners)) / 1024,
               'runner_pss_mb_mean': sum(x['Pss'] for x in runners) / max(1, len(runners)) / 1024,
               'runners_pss_mb_sum': sum(x['Pss'] for x in runners) / 1024,
               'worker_memfd_mb': {k: v / 1024 for k, v in w.get('memfd_kb', {}).items()},
               'runner_memfd_mb': {k: v / 1024 for k, v in
                                   (runners[0]['memfd_kb'].items() if runners else [])},
               'idle_worker_pss_mb': (r['memory_idle']['worker'] or {}).get('Pss', 0) / 1024,
               'idle_runners_pss_mb_sum': sum(x['Pss'] for x in r['memory_idle']['runners'].values()) / 1024,
               'raw': m}
        row['total_pss_mb'] = row['worker_pss_mb'] + row['gateway_pss_mb'] + row['runners_pss_mb_sum']
        row['total_rss_mb'] = (row['worker_rss_mb'] + row['gateway_rss_mb'] +
                               sum(x['Rss'] for x in runners) / 1024)
        mem_rows.append(row)
    xs = [r['tenants'] for r in mem_rows]
    ys = [r['total_pss_mb'] for r in mem_rows]
    slope = float('nan')
    if len(xs) >= 2:
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        den = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else float('nan')
    def fit(ys):
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        den = sum((x - mx) ** 2 for x in xs)
        return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else float('nan')
    memory = {'bench': 'memory', 'model': args.model,
              'model_file_mb': os.path.getsize(args.model) / 2 ** 20,
              'pss_slope_mb_per_tenant': slope,
              'runners_pss_slope_mb_per_tenant': fit([r['runners_pss_mb_sum'] for r in mem_rows]),
              'worker_pss_slope_mb_per_tenant': fit([r['worker_pss_mb'] for r in mem_rows]),
              'idle_worker_pss_slope_mb_per_tenant': fit([r['idle_worker_pss_mb'] for r in mem_rows]),
              'levels': mem_rows}
    with open(os.path.join(args.out, 'memory.json'), 'w') as f:
        json.dump(memory, f, indent=1)

    dat = os.path.join(args.out, 'scaling.dat')
    with open(dat, 'w') as f:
        f.write('# tenants aggregate_tps mean_per_tenant_tps min max itl_p50 itl_p99 fairness '
                'worker_pss runners_pss total_pss worker_rss runner_rss_mean engine_batch_tps\n')
        for r, m in zip(rows, mem_rows):
            f.write(f"{r['tenants']} {r['aggregate_tps']} {r['mean_per_stream_tps']} "
                    f"{r['per_stream_min_tps']} {r['per_stream_max_tps']} {r['itl_p50_ms']} "
                    f"{r['itl_p99_ms']} {r['fairness']} {m['worker_pss_mb']} {m['runners_pss_mb_sum']} "
                    f"{m['total_pss_mb']} {m['worker_rss_mb']} {m['runner_rss_mb_mean']} "
                    f"{r['engine_batch_tps']}\n")
    png = os.path.join(args.out, 'scaling.png')
    gnuplot(f"""
set terminal pngcairo noenhanced size 900,380 font ',9'
set output '{png}'
set multiplot layout 1,2 title 'Tenant scaling: one stream per tenant, each tenant its own runner ({args.threads} worker thread(s), {args.max_tokens} tokens)'
set logscale x 2; set xlabel 'tenants'; set grid; set key top left
set ylabel 'tokens/s'; set yrange [0:*]
plot '{dat}' u 1:2 w lp t 'stack: aggregate', '' u 1:3 w lp t 'stack: per tenant (mean)', '' u 1:4 w l dt 2 t 'stack: per tenant (min)', '' u 1:14 w lp dt 3 t 'engine alone, batch = tenants'
set ylabel 'inter-token latency (ms)'; set key top left
plot '{dat}' u 1:6 w lp t 'p50', '' u 1:7 w lp t 'p99'
unset multiplot
""", png)
    png2 = os.path.join(args.out, 'memory.png')
    gnuplot(f"""
set terminal pngcairo noenhanced size 640,380 font ',9'
set output '{png2}'
set title sprintf('Memory (PSS) as tenants grow: slope %.1f MB per tenant', {slope})
set xlabel 'tenants'; set ylabel 'MB'; set grid; set key top left; set yrange [0:*]
plot '{dat}' u 1:11 w lp t 'total PSS (worker + gateway + runners)', '' u 1:9 w lp t 'worker PSS', '' u 1:10 w lp t 'runners PSS (sum)', '' u 1:12 w l dt 2 t 'worker RSS'
""", png2)
    return scaling, memory


# ---- gateway ------------------------------------------------------------------------------

WRK_LUA = r"""
-- Set by run_stack.py through environment variables: method, path, key, body.
wrk.method = os.getenv("BENCH_METHOD")
wrk.path = os.getenv("BENCH_PATH")
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
local body = os.getenv("BENCH_BODY")
if body ~= nil and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end
done = function(summary, latency, requests)
  local s = summary.duration / 1e6
  io.write(string.format('WRKJSON {"requests":%d,"seconds":%.3f,"rps":%.1f,"non_2xx":%d,' ..
    '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_timeout":%d,' ..
    '"lat_p50_ms":%.3f,"lat_p99_ms":%.3f,"lat_max_ms":%.3f}\n',
    summary.requests, s, summary.requests / s, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
"""


def run_wrk(args, port, method, path, key, body=''):
    lua = os.path.join(args.out, 'wrk.lua')
    with open(lua, 'w') as f:
        f.write(WRK_LUA)
    env = dict(os.environ, BENCH_METHOD=method, BENCH_PATH=path, BENCH_KEY=key, BENCH_BODY=body)
    out = subprocess.run(['wrk', '-t', '2', '-c', str(args.wrk_connections), '-d',
                          f'{args.wrk_seconds}s', '--timeout', '2s', '-s', lua,
                          f'http://127.0.0.1:{port}{path}'], env=env, capture_output=True,
                         text=True, timeout=args.wrk_seconds + 60, check=True)
    for line in out.stdout.splitlines():
        if line.startswith('WRKJSON '):
            return json.loads(line[8:])
    raise RuntimeError(f'wrk printed no result:\n{out.stdout}\n{out.stderr}')


def bench_gateway(args):
    tenants = [{'id': 'limited', 'replicas': 1, 'limits': {'requests_per_minute': 1}},
               {'id': 'open', 'replicas': 1}]
    st = Stack(args, 'gateway', base_config(args, tenants))
    try:
        body = json.dumps({'model': MODEL_NAME, 'messages': [{'role': 'user', 'content': 'Hi'}],
                           'max_tokens': 4})
        # The first request of 'limited' is admitted (the bucket holds one); everything after
        # it within the minute is the 429 path being measured.
        rej = run_wrk(args, st.port, 'POST', '/v1/chat/completions', st.keys['limited'], body)
        # One sample of the answer, to prove what was measured.
        req = urllib.request.Request(f'http://127.0.0.1:{st.port}/v1/chat/completions',
                                     data=body.encode(), method='POST',
                                     headers={'Authorization': 'Bearer ' + st.keys['limited'],
                                              'Content-Type': 'application/json'})
        try:
            urllib.request.urlopen(req, timeout=5)
            rej['sample_status'] = 200
        except urllib.error.HTTPError as e:
            rej['sample_status'] = e.code
            rej['sample_retry_after'] = e.headers.get('Retry-After')
        models = run_wrk(args, st.port, 'GET', '/v1/models', st.keys['open'])
    finally:
        st.stop()
    res = {'bench': 'gateway', 'wrk': {'threads': 2, 'connections': args.wrk_connections,
                                       'seconds': args.wrk_seconds},
           'rejected_429': rej, 'models': models, 'cpus': os.cpu_count()}
    with open(os.path.join(args.out, 'gateway.json'), 'w') as f:
        json.dump(res, f, indent=1)
    dat = os.path.join(args.out, 'gateway.dat')
    with open(dat, 'w') as f:
        f.write(f'"429 (rate-limited POST)" {rej["rps"]} {rej["lat_p99_ms"]}\n')
        f.write(f'"GET /v1/models" {models["rps"]} {models["lat_p99_ms"]}\n')
    png = os.path.join(args.out, 'gateway.png')
    gnuplot(f"""
set terminal pngcairo noenhanced size 640,360 font ',9'
set output '{png}'
set title 'Gateway on loopback: wrk, 2 threads, {args.wrk_connections} connections, {args.wrk_seconds} s (wrk on the same cores)'
set style fill solid 0.6 border -1; set boxwidth 0.5; set xrange [-0.6:1.6]
set ylabel 'requests/s'; set yrange [0:*]; set grid y
set arrow from graph 0, first 20000 to graph 1, first 20000 nohead dt 2 lc rgb 'red'
set label 'target 20,000/s' at graph 0.02, first 20000 offset 0,0.7 tc rgb 'red'
plot '{dat}' u 0:2:xtic(1) w boxes t 'requests/s', '' u 0:2:(sprintf('%.0f/s, p99 %.1f ms', $2, $3)) w labels offset 0,1 notitle
""", png)
    return res


# ---- main ---------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--build', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--only', default='isolation,scaling,gateway')
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--rounds', type=int, default=7)
    ap.add_argument('--max-tokens', type=int, default=64)
    ap.add_argument('--tenants', default='1,2,4,8,16')
    ap.add_argument('--shape', default='stories110m')
    ap.add_argument('--type', default='q8_0')
    ap.add_argument('--model', default=None, help='a GGUF to use instead of synthesizing one')
    ap.add_argument('--ban-token', type=int, default=2,
                    help='token id given logit_bias -100 so greedy decoding never stops early '
                         '(2: the llama EOS); -1: no logit_bias')
    ap.add_argument('--wrk-seconds', type=int, default=5)
    ap.add_argument('--wrk-connections', type=int, default=64)
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    args.out = os.path.abspath(args.out)
    os.makedirs(args.out, exist_ok=True)
    args.realmctl = os.path.join(args.build, 'tools', 'realmctl', 'realmctl')
    args.stack_bench = os.path.join(args.build, 'bench', 'stack', 'stack_bench')
    args.module_cache = os.path.join(args.build, 'bench-stack-module-cache')
    for p in (args.realmctl, args.stack_bench):
        if not os.access(p, os.X_OK):
            sys.exit(f'run_stack: {p} is not built (ninja -C {args.build})')
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    if not args.model:
        # Synthesized once per shape/type, outside the repo, reused by later runs.
        cache = os.path.join(args.build, 'bench-stack-models')
        os.makedirs(cache, exist_ok=True)
        args.model = os.path.join(cache, f'{args.shape}-{args.type}.gguf')
        if not os.path.exists(args.model):
            vocab = ['--vocab', VOCAB] if os.path.exists(VOCAB) else []
            log(f'synthesizing {args.shape} {args.type} (random weights) at {args.model}')
            subprocess.run([args.realmctl, 'model', 'synth', '--shape', args.shape, '--type',
                            args.type, *vocab, '-o', args.model + '.tmp'], check=True,
                           stdout=subprocess.DEVNULL, timeout=600)
            os.rename(args.model + '.tmp', args.model)

    only = set(args.only.split(','))
    if 'memory' in only:
        only.add('scaling')
    unknown = only - {'isolation', 'scaling', 'memory', 'gateway'}
    if unknown:
        sys.exit(f'run_stack: unknown benchmark(s) {",".join(sorted(unknown))}')
    loadavg = os.getloadavg()
    log(f'load average before: {loadavg[0]:.2f} {loadavg[1]:.2f} {loadavg[2]:.2f} on '
        f'{os.cpu_count()} CPUs')
    hp = huge_pages()
    log(f'huge pages: {hp["free"]} of {hp["total"]} free (2 MiB); the worker and the in-process '
        f'engine put the weights on them when the pool has room (docs/operations.md#huge-pages)')
    summary = {'started': time.strftime('%Y-%m-%d %H:%M:%S'), 'loadavg_before': loadavg,
               'cpus': os.cpu_count(), 'model': args.model, 'threads': args.threads,
               'huge_pages': hp}
    t_all = time.monotonic()
    try:
        if 'isolation' in only:
            summary['isolation'] = bench_isolation(args)
        if 'scaling' in only:
            sc, mem = bench_scaling(args)
            summary['scaling'] = sc
            summary['memory'] = {k: v for k, v in mem.items() if k != 'levels'} | {
                'levels': [{k: v for k, v in r.items() if k != 'raw'} for r in mem['levels']]}
        if 'gateway' in only:
            summary['gateway'] = bench_gateway(args)
    finally:
        cleanup()
    summary['loadavg_after'] = os.getloadavg()
    summary['seconds'] = time.monotonic() - t_all
    with open(os.path.join(args.out, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    print_summary(summary)


def huge_pages():
    """HugePages_Total/Free from /proc/meminfo: with a pool the weights use 2 MiB pages, which
    changes both the speed and the PSS accounting (hugetlb pages are not in Pss)."""
    hp = {'total': 0, 'free': 0}
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                k, _, v = line.partition(':')
                if k == 'HugePages_Total':
                    hp['total'] = int(v)
                elif k == 'HugePages_Free':
                    hp['free'] = int(v)
    except OSError:
        pass
    return hp


def print_summary(s):
    print()
    print(f'== Realm stack benchmarks ({s["cpus"]} CPUs, load {s["loadavg_before"][0]:.2f} before, '
          f'{s["loadavg_after"][0]:.2f} after, {s["seconds"]:.0f} s) ==')
    print(f'{"benchmark":<44} {"measured":>16} {"target":>16}  ok')
    def row(name, val, target, ok):
        print(f'{name:<44} {val:>16} {target:>16}  {"yes" if ok else "NO"}')
    if 'isolation' in s:
        iso = s['isolation']
        md, ov = iso['median'], iso['overhead']
        print(f'isolation medians: engine {md["engine"]["decode_tps"]:.1f} tok/s '
              f'ttft {md["engine"]["ttft_ms"]:.2f} ms | socket {md["socket"]["decode_tps"]:.1f} '
              f'/ {md["socket"]["ttft_ms"]:.2f} ms | stack {md["stack"]["decode_tps"]:.1f} / '
              f'{md["stack"]["ttft_ms"]:.2f} ms')
        row('decode overhead, stack vs engine (medians)', f'{ov["stack_decode_pct"]:.2f} %', '<= 3 %',
            ov['stack_decode_pct'] <= 3)
        row('added TTFT, stack vs engine (medians)', f'{ov["stack_ttft_added_ms"]:.2f} ms', '<= 5 ms',
            ov['stack_ttft_added_ms'] <= 5)
        row('decode overhead, worker socket vs engine', f'{ov["socket_decode_pct"]:.2f} %', '(info)', True)
        row('CPU per request (all processes), stack vs engine', f'{ov["stack_cpu_pct"]:+.2f} %',
            '(info)', True)
        c = iso['cpu_by_process_ms']['stack']
        print('CPU per stack request (ms, medians): ' +
              ', '.join(f'{k} {v:.1f}' for k, v in c.items()) +
              f' | engine alone {iso["cpu_by_process_ms"]["engine"]["client"]:.1f}')
        row('CPU added by runner+gateway+client (of worker)',
            f'{iso["stack_added_cpu_pct_of_worker"]:.2f} %', '(info)', True)
        rb = iso['robust']
        print(f'fast end (p10 inter-token gap / best TTFT): engine {rb["engine"]["gap_p10_ms"]:.2f} / '
              f'{rb["engine"]["ttft_min_ms"]:.2f} ms | socket {rb["socket"]["gap_p10_ms"]:.2f} / '
              f'{rb["socket"]["ttft_min_ms"]:.2f} ms | stack {rb["stack"]["gap_p10_ms"]:.2f} / '
              f'{rb["stack"]["ttft_min_ms"]:.2f} ms')
        row('per-token time, stack vs engine (p10 gap)', f'{rb["stack_decode_pct"]:+.2f} %', '<= 3 %',
            rb['stack_decode_pct'] <= 3)
        row('added TTFT, stack vs engine (best of rounds)', f'{rb["stack_ttft_added_ms"]:.2f} ms',
            '<= 5 ms', rb['stack_ttft_added_ms'] <= 5)
    if 'scaling' in s:
        lv = s['scaling']['levels']
        base = lv[0]['aggregate_tps']
        print(f'{"tenants":>8} {"aggregate":>10} {"x vs 1":>7} {"per-tenant":>11} '
              f'{"itl p50":>8} {"itl p99":>8} {"fairness":>9} {"engine b=n":>11} {"stack/eng":>9}')
        for r in lv:
            print(f'{r["tenants"]:>8} {r["aggregate_tps"]:>10.1f} {r["aggregate_tps"] / base:>7.2f} '
                  f'{r["mean_per_stream_tps"]:>11.1f} {r["itl_p50_ms"]:>8.2f} {r["itl_p99_ms"]:>8.2f} '
                  f'{r["fairness"]:>9.3f} {r["engine_batch_tps"]:>11.1f} '
                  f'{r["stack_vs_engine_batch"]:>9.2f}')
        worst = max(r['fairness'] for r in lv)
        row('fairness (max/min per tenant), worst level', f'{worst:.3f}', '<= 1.2', worst <= 1.2)
    if 'memory' in s:
        m = s['memory']
        print(f'{"tenants":>8} {"worker PSS":>11} {"worker RSS":>11} {"runner PSS":>11} '
              f'{"runner RSS":>11} {"total PSS":>10}   (MB; runner = mean per runner)')
        for r in m['levels']:
            print(f'{r["tenants"]:>8} {r["worker_pss_mb"]:>11.1f} {r["worker_rss_mb"]:>11.1f} '
                  f'{r["runner_pss_mb_mean"]:>11.1f} {r["runner_rss_mb_mean"]:>11.1f} '
                  f'{r["total_pss_mb"]:>10.1f}')
        print(f'slopes (MB per tenant): runners PSS {m["runners_pss_slope_mb_per_tenant"]:.2f}, worker PSS '
              f'{m["worker_pss_slope_mb_per_tenant"]:.2f} after streams / '
              f'{m["idle_worker_pss_slope_mb_per_tenant"]:.2f} before them (KV pages of the streams)')
        row('total PSS slope per tenant', f'{m["pss_slope_mb_per_tenant"]:.1f} MB',
            f'<< {m["model_file_mb"]:.0f} MB', m['pss_slope_mb_per_tenant'] < m['model_file_mb'] / 4)
    if 'gateway' in s:
        g = s['gateway']
        for name, key in (('gateway 429 path', 'rejected_429'), ('gateway GET /v1/models', 'models')):
            r = g[key]
            row(f'{name} req/s (p99 {r["lat_p99_ms"]:.2f} ms)', f'{r["rps"]:.0f}', '>= 20000',
                r['rps'] >= 20000)


if __name__ == '__main__':
    main()
