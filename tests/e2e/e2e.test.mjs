// e2e.test.mjs — the whole stack under `realmctl up`, judged by the official `openai` client.
//
// argv: REALMCTL MODEL(stories260K.gguf) MODULE_CACHE OPENAI_INDEX_MJS
// Starts `realmctl up --port 0 --ready-fd 3` in its own process group with three tenants
// (acme with 2 runner replicas, globex, initech), reads up's JSON events on fd 3 (ready with the
// port and keys; start/exit per child; reloaded) and its prefixed log on stderr, then:
//   concurrent_streams      all three tenants stream at once: framing, finish_reason, usage
//                           chunk; greedy completion of "" contains the stories260K oracle
//   config_to_daemons       the config's worker.backend reaches realm-worker (its ready line
//                           names the cpu backend) and initech's chat_template (chatml)
//                           reaches its runner: the same chat costs initech more prompt
//                           tokens than globex, which has no template (raw rendering)
//   runner_kill_mid_stream  kill -9 an acme replica that carries streams (read from the
//                           gateway's realm_runner_in_flight_requests while two acme streams
//                           run): exactly its streams fail with an error, the others finish;
//                           the replica is restarted and a new request is served by it
//   worker_kill_mid_stream  kill -9 the worker: every in-flight stream ends with an error
//                           within 2 s; worker and runners (exit 75) are restarted; every
//                           tenant is served again
//   onboarding              `realmctl tenant add` + SIGHUP to up: up starts the new tenant's
//                           runner, reloads the gateway, and the new key works at once
//   key_rotation            `realmctl tenant rotate-key` + SIGHUP: new key works, old is 401
//   ctrl_c_drains          a stream in flight, then Ctrl-C (SIGINT to up's process group,
//                           as a terminal sends it; the daemons run in groups of their own):
//                           up stops the gateway first, which drains — /ready and new requests
//                           503 shutting_down while the stream goes on — the stream finishes
//                           whole (or, past the 2 s drain up derives from stop_grace_ms 3000,
//                           ends with the shutting_down error event, never a bare cut), the
//                           gateway exits 0 (not SIGKILLed), up exits 0, no child left
//   second_stop_cuts_drain  a fresh up on the same state dir; a 450-token stream, SIGTERM to
//                           up, then Ctrl-C while the gateway drains: the stream ends at once
//                           with the shutting_down error event, the gateway logs end="second
//                           signal" and exits 0, up exits 0, no child left
// Every wait is bounded (events, log lines and HTTP polled with deadlines; no sleep is used to
// synchronise); a watchdog fails the run after 55 s; on any exit up's process group and every
// child it reported started and not exited are killed.
import { spawn, execFileSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, writeFileSync, rmSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { pathToFileURL } from 'node:url';

const [realmctl, modelPath, moduleCache, openaiIndex] = process.argv.slice(2);
const { default: OpenAI, APIError } = await import(pathToFileURL(openaiIndex).href);

const ORACLE = ' Once upon a time, there was a little girl named Lily.';
const MODEL = 'stories260k';
const T0 = Date.now();
const cases = [];
const test = (name, fn) => cases.push({ name, fn });

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}
function assertEq(got, want, what) {
  if (got !== want) throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}
const elapsed = () => ((Date.now() - T0) / 1000).toFixed(1);

// ---- the stack --------------------------------------------------------------------------------

// The full log of `up` goes next to the module cache (the build dir) for post-mortems.
const upLog = join(dirname(moduleCache), 'e2e-up.log');
writeFileSync(upLog, '');
const stateDir = mkdtempSync(join(tmpdir(), 'realm-e2e-'));
const configPath = join(stateDir, 'up.json');
writeFileSync(configPath, JSON.stringify({
  model: { name: MODEL },
  gateway: { listen: '127.0.0.1', port: 0, args: ['--ping-ms', '200'] },
  // Each batch waits 2 ms for company (no eager start): a 400-token stream then lasts about a
  // second even on a fast machine, so a kill after its first chunk is surely mid-stream.
  worker: { threads: 1, backend: 'cpu', args: ['--batch-window-us', '2000', '--no-batch-eager'] },
  supervisor: { backoff_ms: 50, max_backoff_ms: 400, healthy_after_ms: 2000, stop_grace_ms: 3000 },
  tenants: [
    { id: 'acme', replicas: 2, limits: { max_concurrent: 16 }, weight: 2 },
    { id: 'globex', replicas: 1 },
    { id: 'initech', replicas: 1, chat_template: 'chatml' },
  ],
}));

let up = null;               // the realmctl up child (process group leader)
const events = [];           // every JSON event from fd 3, in order
const logLines = [];         // up's stderr + stdout lines (for waits and for failure reports)
let waiters = [];            // {pred, resolve} re-checked on every event / log line

function notify() {
  waiters = waiters.filter((w) => {
    const hit = w.pred();
    if (hit) w.resolve(hit);
    return !hit;
  });
}

/** Resolves with pred()'s first truthy value; rejects after ms with what. */
function waitFor(pred, ms, what) {
  const hit = pred();
  if (hit) return Promise.resolve(hit);
  return new Promise((resolve, reject) => {
    const w = { pred, resolve: (v) => { clearTimeout(timer); resolve(v); } };
    const timer = setTimeout(() => {
      waiters = waiters.filter((x) => x !== w);
      reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
    }, ms);
    waiters.push(w);
  });
}

function startUp() {
  up = spawn(realmctl, ['up', '--config', configPath, '--model', modelPath, '--state-dir', stateDir,
    '--module-cache', moduleCache, '--port', '0', '--ready-fd', '3', '--ready-timeout', '40'], {
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    detached: true, // own process group: one kill reaches up and every daemon it started
    env: { ...process.env, REALM_LOG_FORMAT: 'text' },
  });
  up.exitInfo = null;
  up.on('exit', (code, signal) => { up.exitInfo = { code, signal }; notify(); });
  for (const s of [up.stdout, up.stderr]) {
    createInterface({ input: s }).on('line', (l) => {
      logLines.push(l);
      appendFileSync(upLog, `${l}\n`);
      notify();
    });
  }
  createInterface({ input: up.stdio[3] }).on('line', (l) => {
    appendFileSync(upLog, `EVENT ${l}\n`);
    try { events.push(JSON.parse(l)); } catch { logLines.push(`# bad event line: ${l}`); }
    notify();
  });
}

function killGroup(sig) {
  if (!up) return;
  try { process.kill(-up.pid, sig); } catch { /* already gone */ }
}

/** pids of children up reported started and not (yet) exited: each runs in a process group
 * of its own, so a kill of up's group does not reach them. */
function liveChildPids() {
  const live = new Set();
  for (const e of events) {
    if (e.event === 'start') live.add(e.pid);
    else if (e.event === 'exit') live.delete(e.pid);
  }
  return [...live];
}

function killAll() {
  killGroup('SIGKILL');
  for (const p of liveChildPids()) {
    try { process.kill(p, 'SIGKILL'); } catch { /* already gone */ }
  }
}

/** pid of the child's most recent start event. */
function pidOf(name) {
  for (let i = events.length - 1; i >= 0; i--) {
    if (events[i].event === 'start' && events[i].name === name) return events[i].pid;
  }
  throw new Error(`no start event for ${name}`);
}
const eventCount = () => events.length;

/** Waits for a start event of `name` after event index `since`. */
function waitRestart(name, since, ms) {
  return waitFor(() => events.slice(since).find((e) => e.event === 'start' && e.name === name),
    ms, `a restart of ${name}`);
}

let port, keys, client = {};

async function httpStatus(path) {
  try {
    const r = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(1000) });
    await r.text();
    return r.status;
  } catch {
    return 0;
  }
}

/** Polls GET /ready every 50 ms until 200, for at most ms. */
async function waitReady(ms) {
  const until = Date.now() + ms;
  for (;;) {
    if ((await httpStatus('/ready')) === 200) return;
    if (Date.now() > until) throw new Error(`/ready not 200 within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50)); // poll interval, not synchronisation
  }
}

const mkClient = (key) => new OpenAI({ apiKey: key, baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 0, timeout: 20000 });

/**
 * Streams a chat completion and checks the framing the SDK exposes. Returns
 * {text, finish, usage, chunks, error}. onChunk(n) is called after each content chunk.
 */
async function chatStream(c, { max_tokens = 64, content = 'Once upon a time', onChunk } = {}) {
  const out = { text: '', finish: null, usage: null, chunks: 0, error: null, id: null, role: null,
    maxTokens: max_tokens };
  try {
    const stream = await c.chat.completions.create({
      model: MODEL, messages: [{ role: 'user', content }], max_tokens, temperature: 0.8, seed: 7,
      stream: true, stream_options: { include_usage: true },
    });
    for await (const ch of stream) {
      assertEq(ch.object, 'chat.completion.chunk', 'chunk object');
      if (out.id === null) out.id = ch.id;
      assertEq(ch.id, out.id, 'all chunks share one id');
      if (ch.choices.length === 0) {
        assert(ch.usage, 'a chunk with no choices must carry usage');
        out.usage = ch.usage;
        continue;
      }
      assertEq(ch.usage, null, 'usage is null on choice chunks with include_usage');
      assert(out.finish === null, 'no choice chunk after the finish chunk');
      const d = ch.choices[0].delta;
      if (d.role) out.role = d.role;
      if (d.content) {
        out.text += d.content;
        out.chunks++;
        if (onChunk) onChunk(out.chunks);
      }
      if (ch.choices[0].finish_reason) out.finish = ch.choices[0].finish_reason;
    }
  } catch (e) {
    out.error = e;
  }
  return out;
}

function checkComplete(r, what) {
  if (r.error) throw new Error(`${what}: stream failed: ${r.error.message}`);
  assertEq(r.role, 'assistant', `${what}: role`);
  assert(['stop', 'length'].includes(r.finish), `${what}: finish_reason ${r.finish}`);
  assert(r.usage, `${what}: no usage chunk`);
  assert(r.usage.completion_tokens > 0, `${what}: completion_tokens ${r.usage.completion_tokens}`);
  if (r.finish === 'length') assertEq(r.usage.completion_tokens, r.maxTokens, `${what}: tokens at 'length'`);
  else assert(r.usage.completion_tokens < r.maxTokens, `${what}: 'stop' at the cap`);
  assertEq(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens, `${what}: total_tokens`);
  assert(r.text.length > 0, `${what}: empty text`);
}

/** Resolves once every stream in `counts` has seen at least one content chunk. */
function firstChunks(n) {
  let seen = 0;
  let resolveAll;
  const all = new Promise((r) => { resolveAll = r; });
  const hook = () => { if (++seen === n) resolveAll(); };
  return { all, hook };
}

// ---- cases ------------------------------------------------------------------------------------

test('stack_ready', async () => {
  startUp();
  const ready = await waitFor(() => events.find((e) => e.event === 'ready') ||
    (up.exitInfo && { exited: up.exitInfo }), 45000, 'the ready event');
  assert(!ready.exited, `realmctl up exited before ready: ${JSON.stringify(ready.exited)}`);
  port = ready.port;
  keys = ready.keys;
  for (const t of ['acme', 'globex', 'initech']) {
    assert(typeof keys[t] === 'string' && keys[t].startsWith('sk-realm-'), `key for ${t}`);
    client[t] = mkClient(keys[t]);
  }
  const names = ready.children.map((c) => c.name).sort();
  assertEq(JSON.stringify(names), JSON.stringify(['gateway', 'runner acme/0', 'runner acme/1',
    'runner globex/0', 'runner initech/0', 'worker']), 'children');
  assertEq(await httpStatus('/ready'), 200, '/ready');
  assert(logLines.some((l) => l.startsWith('[worker] ')), 'worker log lines are prefixed');
  assert(logLines.some((l) => l.startsWith('[runner acme/1] ')), 'runner log lines are prefixed');
  assert(logLines.some((l) => l.startsWith('[gateway] ')), 'gateway log lines are prefixed');
  console.log(`# ready after ${elapsed()} s on port ${port}`);
});

test('concurrent_streams', async () => {
  const greedy = (async () => {
    const s = await client.globex.completions.create({
      model: MODEL, prompt: '', max_tokens: 40, temperature: 0, stream: true,
      stream_options: { include_usage: true },
    });
    let text = '', finish = null, usage = null;
    for await (const ch of s) {
      if (ch.choices.length === 0) { usage = ch.usage; continue; }
      text += ch.choices[0].text;
      if (ch.choices[0].finish_reason) finish = ch.choices[0].finish_reason;
    }
    return { text, finish, usage };
  })();
  const rs = await Promise.all([chatStream(client.acme), chatStream(client.acme),
    chatStream(client.globex), chatStream(client.initech)]);
  rs.forEach((r, i) => checkComplete(r, `stream ${i}`));
  const g = await greedy;
  assert(g.text.startsWith(ORACLE), `greedy text: ${JSON.stringify(g.text)}`);
  // stories260K does not emit EOS within 40 greedy tokens: the cap ends it, counted exactly.
  assertEq(g.finish, 'length', 'greedy finish_reason');
  assert(g.usage, 'greedy usage chunk');
  assertEq(g.usage.completion_tokens, 40, 'greedy completion_tokens');
  assertEq(g.usage.prompt_tokens, 1, 'greedy prompt_tokens (BOS only)');
});

test('config_to_daemons', async () => {
  assert(logLines.some((l) => l.startsWith('[worker] ') && /worker ready.*backend="?cpu/.test(l)),
    'the worker ready line names the cpu backend');
  const ask = async (c) => (await c.chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: 'Tell me a story' }], max_tokens: 1,
  })).usage.prompt_tokens;
  const [plain, chatml] = [await ask(client.globex), await ask(client.initech)];
  assert(chatml > plain, `chatml prompt (${chatml} tokens) should be longer than the raw one (${plain})`);
  console.log(`# same chat: ${plain} prompt tokens raw, ${chatml} with chatml`);
});

/** acme's in-flight requests per replica index, from the gateway's own gauge. */
async function acmeInFlight() {
  const r = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(2000) });
  const text = await r.text();
  const per = [0, 0];
  const re = /^realm_runner_in_flight_requests\{tenant="acme",replica="[^"]*runner-acme-(\d+)\.sock"\} (\d+)$/gm;
  for (let m; (m = re.exec(text));) per[Number(m[1])] = Number(m[2]);
  return per;
}

test('runner_kill_mid_stream', async () => {
  const since = eventCount();
  const fc = firstChunks(2); // both acme streams have started
  const long = { max_tokens: 400 };
  const acme = { ...long, onChunk: (n) => { if (n === 1) fc.hook(); } };
  const streams = [chatStream(client.acme, acme), chatStream(client.acme, acme),
    chatStream(client.globex, long), chatStream(client.initech, long)];
  await Promise.race([fc.all, Promise.all(streams)]);
  // Least-outstanding routing normally puts one stream on each replica, but a replica whose
  // pong is late gets none; kill one that carries streams, and expect exactly its streams to
  // fail.
  const per = await acmeInFlight();
  const idx = per[0] > 0 ? 0 : 1;
  assert(per[idx] > 0, `an acme replica carries a stream (in flight per replica: ${per})`);
  const name = `runner acme/${idx}`;
  const victim = pidOf(name);
  const mark = logLines.length; // the gateway's "is up" line for the new process comes after this
  process.kill(victim, 'SIGKILL');
  const rs = await Promise.all(streams);
  const failed = rs.filter((r) => r.error);
  assertEq(failed.length, per[idx], `failed streams (${rs.map((r) => r.error ? r.error.message : r.finish).join(' | ')})`);
  assert(!rs[2].error && !rs[3].error, 'only acme streams fail');
  failed.forEach((f) => assert(f.error instanceof APIError, `error class ${f.error.constructor.name}`));
  rs.filter((r) => !r.error).forEach((r, i) => checkComplete(r, `survivor ${i}`));
  await waitRestart(name, since, 10000);
  // The gateway must see the restarted replica up again (its pong), not only the survivor.
  await waitFor(() => logLines.slice(mark).find((l) => l.startsWith('[gateway]') &&
    l.includes(`runner-acme-${idx}.sock of tenant acme is up`)), 10000, `the gateway to see acme/${idx} up`);
  // A new acme request is served (by the restarted replica when it is acme/0: ties go to the
  // first listed one).
  const r = await chatStream(client.acme, { max_tokens: 16 });
  checkComplete(r, 'after restart');
});

test('worker_kill_mid_stream', async () => {
  const victim = pidOf('worker');
  const since = eventCount();
  const fc = firstChunks(3);
  const long = { max_tokens: 400, onChunk: (n) => { if (n === 1) fc.hook(); } };
  const streams = [chatStream(client.acme, long), chatStream(client.globex, long),
    chatStream(client.initech, long)].map((p) => p.then((r) => ({ ...r, endedAt: Date.now() })));
  await Promise.race([fc.all, Promise.all(streams)]);
  const killedAt = Date.now();
  process.kill(victim, 'SIGKILL');
  const rs = await Promise.all(streams);
  rs.forEach((r, i) => {
    assert(r.error, `stream ${i} finished (${r.finish}, ${r.chunks} chunks) instead of failing`);
    assert(r.endedAt - killedAt <= 2000, `stream ${i} ended ${r.endedAt - killedAt} ms after the kill`);
  });
  console.log(`# streams failed ${Math.max(...rs.map((r) => r.endedAt - killedAt))} ms after the worker kill`);
  await waitRestart('worker', since, 10000);
  for (const n of ['runner acme/0', 'runner acme/1', 'runner globex/0', 'runner initech/0']) {
    await waitFor(() => events.slice(since).find((e) => e.event === 'exit' && e.name === n &&
      e.exit_status === 75), 10000, `${n} to exit 75`);
    await waitRestart(n, since, 10000);
  }
  await waitReady(15000);
  for (const t of ['acme', 'globex', 'initech']) {
    const c = await client[t].chat.completions.create({
      model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 8,
    });
    assert(c.choices[0].message.content.length > 0, `${t}: empty answer after the worker restart`);
  }
});

function realmctlTenant(args) {
  return execFileSync(realmctl, ['tenant', ...args, '--file', join(stateDir, 'tenants.json')],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10000 }).trim();
}

async function reloadUp() {
  const since = eventCount();
  process.kill(up.pid, 'SIGHUP');
  const ev = await waitFor(() => events.slice(since).find((e) => e.event === 'reloaded'), 30000,
    'the reloaded event');
  assert(ev.ok, `reload failed: ${ev.error}`);
  return ev;
}

test('onboarding', async () => {
  const key = realmctlTenant(['add', 'newco', '--models', MODEL, '--concurrency', '4']);
  assert(key.startsWith('sk-realm-'), `tenant add printed ${key}`);
  const ev = await reloadUp();
  assertEq(JSON.stringify(ev.started), JSON.stringify(['runner newco/0']), 'runners started');
  const c = await mkClient(key).chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: 'hello' }], max_tokens: 8,
  });
  assert(c.choices[0].message.content.length > 0, 'new tenant answer');
});

test('key_rotation', async () => {
  const key = realmctlTenant(['rotate-key', 'globex']);
  assert(key.startsWith('sk-realm-') && key !== keys.globex, 'a new key');
  const ev = await reloadUp();
  assertEq(ev.started.length, 0, 'no runner started by a rotation');
  const c = await mkClient(key).chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: 'hello' }], max_tokens: 8,
  });
  assert(c.choices[0].message.content.length > 0, 'answer with the rotated key');
  try {
    await client.globex.models.list();
    throw new Error('the old key still works');
  } catch (e) {
    assert(e instanceof APIError && e.status === 401, `old key: ${e.message}`);
  }
});

/** A POST /v1/chat/completions with fetch: {status, code} (status 0 when the connection
 * failed, e.g. the gateway has exited). */
async function chatStatus(key) {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 }),
      signal: AbortSignal.timeout(2000),
    });
    const body = await r.json().catch(() => ({}));
    return { status: r.status, code: body && body.error ? body.error.code : null };
  } catch {
    return { status: 0, code: null };
  }
}

/** The gateway's `drain finished` log line after log index `since`, parsed (logfmt). */
function drainFinished(since) {
  const l = logLines.slice(since).find((x) => x.startsWith('[gateway] ') && x.includes('msg="drain finished"'));
  if (!l) return null;
  const f = { line: l };
  for (const m of l.matchAll(/(\w+)=("[^"]*"|\S+)/g)) f[m[1]] = m[2].replace(/^"|"$/g, '');
  return f;
}

/** Waits for up to exit 0 with the gateway exited 0 (drained, not SIGKILLed) and no child left. */
async function checkStopped(pids, since, what) {
  const info = await waitFor(() => up.exitInfo, 15000, `realmctl up to exit (${what})`);
  assertEq(info.code, 0, `${what}: up's exit code`);
  const gw = events.slice(since).find((e) => e.event === 'exit' && e.name === 'gateway');
  assert(gw, `${what}: no exit event of the gateway`);
  assertEq(gw.exit_status, 0, `${what}: gateway exit status (signal ${gw.signal})`);
  const alive = pids.filter((p) => { try { process.kill(p, 0); return true; } catch { return false; } });
  assertEq(alive.length, 0, `${what}: children left alive: ${alive.join(',')}`);
  assert(logLines.slice(since).some((l) => l.includes('[up] stopped')), `${what}: up said it stopped`);
}

test('ctrl_c_drains', async () => {
  const pids = liveChildPids();
  const since = eventCount();
  const mark = logLines.length;
  let first;
  const gotFirst = new Promise((r) => { first = r; });
  let ended = false;
  const stream = chatStream(client.acme, { max_tokens: 200, onChunk: (n) => { if (n === 1) first(); } })
    .then((r) => { ended = true; return { ...r, endedAt: Date.now() }; });
  await Promise.race([gotFirst, stream]);
  assert(!ended, 'the stream ended before Ctrl-C');
  // Ctrl-C in a terminal: SIGINT to the foreground process group, which is up's alone.
  killGroup('SIGINT');
  const sigAt = Date.now();
  const drainLine = await waitFor(() => logLines.slice(mark).find((l) => l.startsWith('[gateway] ') &&
    l.includes('draining: no new requests')), 5000, "the gateway's draining line");
  assert(/in_flight=[1-9]/.test(drainLine), `the stream was not in flight when the drain began: ${drainLine}`);
  // up derives --drain-timeout from stop_grace_ms (3000 here) minus 1 s, so that the drain
  // ends before up's SIGKILL.
  assert(/drain_timeout_ms=2000\b/.test(drainLine), `the gateway's drain timeout is not 2000 ms: ${drainLine}`);
  // While the stream is open the gateway must refuse new work with a retryable 503; once it
  // has ended the gateway may already be gone (connection refused), which proves nothing.
  const [ready, fresh] = await Promise.all([httpStatus('/ready'), chatStatus(keys.acme)]);
  const streamOpen = !ended;
  if (streamOpen) {
    assertEq(ready, 503, '/ready during the drain');
    assertEq(`${fresh.status} ${fresh.code}`, '503 shutting_down', 'a new request during the drain');
  }
  const r = await stream;
  if (r.error) {
    // Only the drain timeout may end it, and then with the error event, never a bare cut.
    assert(r.error instanceof APIError && r.error.code === 'shutting_down',
      `stream ended by ${r.error.constructor.name} ${r.error.code}: ${r.error.message}`);
    console.log(`# the stream outlasted the 2 s drain and ended with the shutting_down event after ${r.chunks} chunks`);
  } else {
    checkComplete(r, 'the stream drained');
  }
  assert(r.endedAt - sigAt < 5000, `the stream ended ${r.endedAt - sigAt} ms after Ctrl-C`);
  await checkStopped(pids, since, 'Ctrl-C');
  // Child 'exit' can precede the last lines read from its pipe: wait for the line (bounded).
  const d = await waitFor(() => drainFinished(mark), 5000, "the gateway's 'drain finished' line");
  assertEq(d.in_flight_at_start, '1', `in_flight_at_start (${d.line})`);
  assertEq(`${d.end} cut_off=${d.cut_off}`, r.error ? 'timeout cut_off=1' : 'drained cut_off=0',
    `drain end (${d.line})`);
  console.log(`# Ctrl-C: stream ${r.error ? 'cut with its error event' : `finished (${r.finish}, ${r.chunks} chunks)`} ` +
    `${r.endedAt - sigAt} ms after the signal; drain ${d.elapsed_ms} ms; open during the probe: ${streamOpen}`);
});

test('second_stop_cuts_drain', async () => {
  // A fresh up on the same state dir keeps every key hash, so it prints no keys: rotate acme's
  // (up is stopped; the tenants file is free) and use the new one.
  const key = realmctlTenant(['rotate-key', 'acme']);
  const since = eventCount();
  const mark = logLines.length;
  startUp();
  const ready = await waitFor(() => events.slice(since).find((e) => e.event === 'ready') ||
    (up.exitInfo && { exited: up.exitInfo }), 30000, 'the second ready event');
  assert(!ready.exited, `the second up exited before ready: ${JSON.stringify(ready.exited)}`);
  port = ready.port;
  const pids = liveChildPids();
  let first;
  const gotFirst = new Promise((r) => { first = r; });
  const stream = chatStream(mkClient(key), { max_tokens: 450, onChunk: (n) => { if (n === 1) first(); } })
    .then((r) => ({ ...r, endedAt: Date.now() }));
  await Promise.race([gotFirst, stream]);
  process.kill(up.pid, 'SIGTERM');
  await waitFor(() => logLines.slice(mark).find((l) => l.startsWith('[gateway] ') &&
    l.includes('draining: no new requests')), 5000, "the gateway's draining line");
  killGroup('SIGINT'); // the second stop: up passes it on, the gateway ends the stream now
  const secondAt = Date.now();
  const r = await stream;
  assert(r.error, `the stream finished (${r.finish}, ${r.chunks} chunks) before the second signal cut it`);
  assert(r.error instanceof APIError && r.error.code === 'shutting_down',
    `stream ended by ${r.error.constructor.name} ${r.error.code}: ${r.error.message}`);
  assert(r.endedAt - secondAt < 1500, `the stream ended ${r.endedAt - secondAt} ms after the second signal`);
  // up's own log line travels through its stderr pipe and can arrive after the stream's error
  // event: wait for it (bounded) rather than expecting it already read.
  await waitFor(() => logLines.slice(mark).find((l) => l.startsWith('[up] second stop signal: gateway')),
    5000, 'up to say it passed the second signal on');
  await checkStopped(pids, since, 'second stop');
  // Child 'exit' can precede the last lines read from its pipe: wait for the line (bounded).
  const d = await waitFor(() => drainFinished(mark), 5000, "the gateway's 'drain finished' line");
  assertEq(`${d.end} cut_off=${d.cut_off}`, 'second signal cut_off=1', `drain end (${d.line})`);
  console.log(`# second stop: the stream ended with shutting_down ${r.endedAt - secondAt} ms after it, ` +
    `after ${r.chunks} chunks`);
});

// ---- runner -----------------------------------------------------------------------------------

function cleanup() {
  killAll();
  try { rmSync(stateDir, { recursive: true, force: true }); } catch { /* best effort */ }
}
process.on('exit', killAll);

const watchdog = setTimeout(() => {
  console.log('# watchdog: the e2e run took more than 55 s');
  for (const l of logLines.slice(-60)) console.log(`#   ${l}`);
  cleanup();
  process.exit(1);
}, 55000);

console.log(`1..${cases.length}`);
let failed = 0, i = 0, broken = false;
for (const c of cases) {
  i++;
  if (broken) {
    console.log(`not ok ${i} ${c.name} # the stack did not start`);
    failed++;
    continue;
  }
  const t = Date.now();
  try {
    await c.fn();
    console.log(`ok ${i} ${c.name} # ${((Date.now() - t) / 1000).toFixed(1)} s`);
  } catch (e) {
    failed++;
    console.log(`not ok ${i} ${c.name}`);
    for (const l of String(e && e.stack || e).split('\n')) console.log(`# ${l}`);
    if (c.name === 'stack_ready') broken = true;
  }
}
if (failed) {
  console.log('# last lines of realmctl up:');
  for (const l of logLines.slice(-80)) console.log(`#   ${l}`);
}
console.log(`# total ${elapsed()} s; full log of up: ${upLog}`);
clearTimeout(watchdog);
cleanup();
process.exit(failed ? 1 : 0);
