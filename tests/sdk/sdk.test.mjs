// sdk.test.mjs — OpenAI SDK compatibility of realm-gateway, with the official `openai` npm
// client (pinned in package.json) as the judge of our wire format.
//
// It spawns gw-fake-stack (argv[2]): the gateway core with the real runner backend and one
// fake runner replica over real ZeroMQ, which answers "You said: <last message or prompt>".
// Tenants there: key sk-sdk-good (model m1, generous limits) and sk-sdk-tiny (1 request per
// minute). Prints TAP; every case has a time limit and the whole run a watchdog, so a hung
// gateway fails the test instead of hanging it. maxRetries is 0: the SDK would otherwise retry
// 429/5xx and hide what the gateway answered.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import OpenAI from 'openai';

const stackPath = process.argv[2];
const cases = [];
const test = (name, fn) => cases.push({ name, fn });

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}
function assertEq(got, want, what) {
  if (got !== want) throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

function startStack() {
  return new Promise((resolve, reject) => {
    const child = spawn(stackPath, [], {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: process.env,
    });
    const timer = setTimeout(() => reject(new Error('gw-fake-stack printed no PORT within 15 s')), 15000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`gw-fake-stack exited early with ${code}`));
    });
    createInterface({ input: child.stdout }).on('line', (line) => {
      const m = /^PORT (\d+)$/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]) });
      }
    });
  });
}

async function expectError(promise, cls, status) {
  try {
    await promise;
  } catch (e) {
    assert(e instanceof cls, `expected ${cls.name}, got ${e && e.constructor && e.constructor.name}: ${e && e.message}`);
    assertEq(e.status, status, 'status');
    return e;
  }
  throw new Error(`expected ${cls.name}, the call succeeded`);
}

let good, tiny, bad;

test('models_list', async () => {
  const page = await good.models.list();
  const ids = page.data.map((m) => m.id);
  assert(ids.includes('m1'), `models: ${JSON.stringify(ids)}`);
});

test('chat_completion_non_streaming', async () => {
  const c = await good.chat.completions.create({
    model: 'm1',
    messages: [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hello SDK' },
    ],
    temperature: 0.2,
    max_tokens: 16,
  });
  assertEq(c.object, 'chat.completion', 'object');
  assertEq(c.model, 'm1', 'model');
  assertEq(c.choices.length, 1, 'choices');
  assertEq(c.choices[0].message.role, 'assistant', 'role');
  assertEq(c.choices[0].message.content, 'You said: Hello SDK', 'content');
  assertEq(c.choices[0].finish_reason, 'stop', 'finish_reason');
  assertEq(c.usage.completion_tokens, 2, 'usage.completion_tokens');
  assertEq(c.usage.total_tokens, c.usage.prompt_tokens + 2, 'usage.total_tokens');
  assert(typeof c._request_id === 'string' && c._request_id.length > 0, 'x-request-id reaches the SDK');
});

test('chat_completion_streaming', async () => {
  const stream = await good.chat.completions.create({
    model: 'm1',
    messages: [{ role: 'user', content: 'stream me' }],
    stream: true,
  });
  let text = '';
  let finish = null;
  let chunks = 0;
  let ids = new Set();
  for await (const chunk of stream) {
    chunks++;
    ids.add(chunk.id);
    assertEq(chunk.object, 'chat.completion.chunk', 'chunk.object');
    for (const ch of chunk.choices) {
      if (ch.delta && ch.delta.content) text += ch.delta.content;
      if (ch.finish_reason) finish = ch.finish_reason;
    }
  }
  assertEq(text, 'You said: stream me', 'streamed content');
  assertEq(finish, 'stop', 'finish_reason');
  assert(chunks >= 3, `chunks: ${chunks}`);
  assertEq(ids.size, 1, 'one id across chunks');
});

test('chat_stream_include_usage', async () => {
  const stream = await good.chat.completions.create({
    model: 'm1',
    messages: [{ role: 'user', content: 'count me' }],
    stream: true,
    stream_options: { include_usage: true },
  });
  let usageChunk = null;
  let text = '';
  for await (const chunk of stream) {
    if (chunk.usage) usageChunk = chunk;
    for (const ch of chunk.choices) if (ch.delta && ch.delta.content) text += ch.delta.content;
  }
  assertEq(text, 'You said: count me', 'content');
  assert(usageChunk !== null, 'a usage chunk arrived');
  assertEq(usageChunk.choices.length, 0, 'usage chunk has no choices');
  assertEq(usageChunk.usage.completion_tokens, 2, 'usage.completion_tokens');
  assert(usageChunk.usage.prompt_tokens > 0, 'usage.prompt_tokens');
});

test('completion_non_streaming', async () => {
  const c = await good.completions.create({ model: 'm1', prompt: 'Once upon', max_tokens: 8 });
  assertEq(c.object, 'text_completion', 'object');
  assertEq(c.choices[0].text, 'You said: Once upon', 'text');
  assertEq(c.choices[0].finish_reason, 'stop', 'finish_reason');
  assertEq(c.usage.completion_tokens, 2, 'usage');
});

test('completion_streaming', async () => {
  const stream = await good.completions.create({ model: 'm1', prompt: 'a time', stream: true });
  let text = '';
  let finish = null;
  for await (const chunk of stream) {
    for (const ch of chunk.choices) {
      text += ch.text || '';
      if (ch.finish_reason) finish = ch.finish_reason;
    }
  }
  assertEq(text, 'You said: a time', 'streamed text');
  assertEq(finish, 'stop', 'finish_reason');
});

// Logprobs: the fake runner attaches to each token logprob -0.5 × (position + 1) and, as
// alternatives, the token itself then "alt1", "alt2", ... one nat apart.
test('chat_logprobs_non_streaming', async () => {
  const c = await good.chat.completions.create({
    model: 'm1',
    messages: [{ role: 'user', content: 'probe' }],
    logprobs: true,
    top_logprobs: 2,
  });
  const lp = c.choices[0].logprobs;
  assert(lp && Array.isArray(lp.content), `logprobs: ${JSON.stringify(lp)}`);
  assertEq(lp.content.length, 2, 'one entry per token');
  assertEq(lp.content.map((e) => e.token).join(''), c.choices[0].message.content, 'tokens spell the text');
  assertEq(lp.content[0].token, 'You said: ', 'first token');
  assertEq(lp.content[0].logprob, -0.5, 'first logprob');
  assertEq(lp.content[1].logprob, -1, 'second logprob');
  assertEq(JSON.stringify(lp.content[1].bytes), JSON.stringify([...Buffer.from('probe')]), 'bytes');
  assertEq(lp.content[0].top_logprobs.length, 2, 'top_logprobs');
  assertEq(lp.content[0].top_logprobs[1].token, 'alt1', 'alternative');
  assertEq(lp.content[0].top_logprobs[1].logprob, -1.5, 'alternative logprob');
});

test('chat_logprobs_streaming', async () => {
  const stream = await good.chat.completions.create({
    model: 'm1',
    messages: [{ role: 'user', content: 'flow' }],
    stream: true,
    logprobs: true,
    top_logprobs: 1,
  });
  const entries = [];
  let text = '';
  for await (const chunk of stream) {
    for (const ch of chunk.choices) {
      if (ch.delta && ch.delta.content) text += ch.delta.content;
      if (ch.logprobs && ch.logprobs.content) entries.push(...ch.logprobs.content);
    }
  }
  assertEq(text, 'You said: flow', 'content');
  assertEq(entries.length, 2, 'entries across chunks');
  assertEq(entries.map((e) => e.token).join(''), text, 'tokens spell the text');
  assertEq(entries[1].top_logprobs[0].token, 'flow', 'best alternative is the token');
});

test('completion_logprobs', async () => {
  const c = await good.completions.create({ model: 'm1', prompt: 'odds', logprobs: 2 });
  const lp = c.choices[0].logprobs;
  assert(lp, 'logprobs present');
  assertEq(JSON.stringify(lp.tokens), JSON.stringify(['You said: ', 'odds']), 'tokens');
  assertEq(JSON.stringify(lp.token_logprobs), JSON.stringify([-0.5, -1]), 'token_logprobs');
  assertEq(JSON.stringify(lp.text_offset), JSON.stringify([0, 10]), 'text_offset');
  assertEq(lp.top_logprobs[1].alt1, -2, 'top_logprobs as {token: logprob}');
});

test('no_logprobs_unless_asked', async () => {
  const c = await good.chat.completions.create({ model: 'm1', messages: [{ role: 'user', content: 'x' }] });
  assertEq(c.choices[0].logprobs, null, 'logprobs');
});

test('bad_key_is_authentication_error', async () => {
  const e = await expectError(
    bad.chat.completions.create({ model: 'm1', messages: [{ role: 'user', content: 'hi' }] }),
    OpenAI.AuthenticationError,
    401,
  );
  assertEq(e.type, 'authentication_error', 'error.type');
});

test('invalid_parameter_is_bad_request_error', async () => {
  const e = await expectError(
    good.chat.completions.create({ model: 'm1', messages: [{ role: 'user', content: 'hi' }], temperature: 5 }),
    OpenAI.BadRequestError,
    400,
  );
  assertEq(e.param, 'temperature', 'error.param');
  assertEq(e.type, 'invalid_request_error', 'error.type');
});

test('unknown_model_is_not_found_error', async () => {
  await expectError(
    good.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'hi' }] }),
    OpenAI.NotFoundError,
    404,
  );
});

test('rate_limit_is_rate_limit_error', async () => {
  const first = await tiny.completions.create({ model: 'm1', prompt: 'one' });
  assertEq(first.choices[0].text, 'You said: one', 'first request passes');
  const e = await expectError(tiny.completions.create({ model: 'm1', prompt: 'two' }), OpenAI.RateLimitError, 429);
  assertEq(e.type, 'rate_limit_error', 'error.type');
  assert(Number(e.headers.get('retry-after')) >= 1, 'Retry-After header');
});

async function main() {
  const watchdog = setTimeout(() => {
    console.log('# watchdog: the SDK test took more than 90 s');
    process.exit(1);
  }, 90000);
  let stack;
  try {
    stack = await startStack();
  } catch (e) {
    console.log('1..1');
    console.log('not ok 1 start_gw_fake_stack');
    console.log(`# ${e.message}`);
    process.exit(1);
  }
  const baseURL = `http://127.0.0.1:${stack.port}/v1`;
  const opts = { baseURL, maxRetries: 0, timeout: 10000 };
  good = new OpenAI({ ...opts, apiKey: 'sk-sdk-good' });
  tiny = new OpenAI({ ...opts, apiKey: 'sk-sdk-tiny' });
  bad = new OpenAI({ ...opts, apiKey: 'sk-sdk-wrong' });
  console.log(`1..${cases.length}`);
  console.log(`# openai ${OpenAI.VERSION ?? '?'} against ${baseURL}`);
  let failed = 0;
  for (let i = 0; i < cases.length; i++) {
    try {
      await cases[i].fn();
      console.log(`ok ${i + 1} ${cases[i].name}`);
    } catch (e) {
      failed++;
      console.log(`not ok ${i + 1} ${cases[i].name}`);
      for (const line of String(e && e.stack ? e.stack : e).split('\n')) console.log(`# ${line}`);
    }
  }
  stack.child.removeAllListeners('exit');
  stack.child.stdin.end(); // EOF: the stack shuts down and cleans up
  await new Promise((resolve) => {
    const t = setTimeout(() => {
      stack.child.kill('SIGKILL');
      resolve();
    }, 10000);
    stack.child.on('exit', () => {
      clearTimeout(t);
      resolve();
    });
  });
  clearTimeout(watchdog);
  process.exit(failed ? 1 : 0);
}

main();
