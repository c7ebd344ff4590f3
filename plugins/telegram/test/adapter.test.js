// The host glue (`adapter.js`) under Node: the contract's imports are
// stood in for by `fake-host.mjs` and `fetch` by a scripted fake.

import assert from 'node:assert/strict';
import { register } from 'node:module';
import { beforeEach, test } from 'node:test';

register('./loader.mjs', import.meta.url);
const { adapter } = await import('../src/adapter.js');

const TOKEN = '123456789:sim-telegram-bot-token';
const SIM = 'https://api.telegram.org';

let requests;
let replies;

beforeEach(() => {
  globalThis.fakeHost = {
    settings: {},
    secrets: { bot_token: TOKEN, webhook_secret: 'secret' },
    reported: [],
    logs: [],
  };
  requests = [];
  replies = [];
  globalThis.fetch = async (url, init) => {
    requests.push({ url, init, body: JSON.parse(init.body) });
    const next = replies.shift() ?? { status: 200, body: { ok: true, result: { message_id: requests.length } } };
    if (next instanceof Error) {
      throw next;
    }
    return new Response(typeof next.body === 'string' ? next.body : JSON.stringify(next.body), {
      status: next.status,
      headers: next.headers ?? {},
    });
  };
});

function text(to, body) {
  return {
    idempotencyKey: `key-${to}`,
    to,
    purpose: 'marketing',
    content: { tag: 'text', val: body },
    ttlSeconds: undefined,
    attempt: 1,
  };
}

test('describe is the channel info', () => {
  assert.equal(adapter.describe().name, 'telegram');
});

test('one sendMessage per message, tagged with its index, each outcome reported', async () => {
  replies = [
    { status: 200, body: { ok: true, result: { message_id: 41 } } },
    {
      status: 403,
      body: { ok: false, error_code: 403, description: 'Forbidden: bot was blocked by the user' },
    },
  ];
  const results = await adapter.send([text('111', 'Hi Ana'), text('222', 'Hi Ben'), text('+49', 'x')]);
  assert.equal(requests.length, 2, 'the phone number is refused without a request');
  assert.equal(requests[0].url, `${SIM}/bot${TOKEN}/sendMessage`);
  assert.equal(requests[0].init.method, 'POST');
  assert.equal(requests[0].init.headers['switchboard-message-index'], '0');
  assert.equal(requests[1].init.headers['switchboard-message-index'], '1');
  assert.deepEqual(requests[0].body, { chat_id: '111', text: 'Hi Ana' });
  assert.deepEqual(results[0], { tag: 'ok', val: { platformMessageId: '41', duplicate: false } });
  assert.equal(results[1].val.tag, 'opted-out');
  assert.equal(results[2].val.tag, 'recipient-unreachable');
  assert.deepEqual(
    globalThis.fakeHost.reported,
    results.map((result, index) => [index, result]),
  );
  assert.equal(globalThis.fakeHost.logs.filter(([level]) => level === 'warn').length, 2);
});

test('disable_notification is passed when set', async () => {
  globalThis.fakeHost.settings.disable_notification = 'true';
  await adapter.send([text('111', 'Hi')]);
  assert.equal(requests[0].body.disable_notification, true);
});

test('a missing or malformed token fails every message as auth-failed without a request', async () => {
  for (const token of [undefined, 'not-a-token']) {
    globalThis.fakeHost.secrets.bot_token = token;
    const results = await adapter.send([text('111', 'Hi'), text('222', 'Hi')]);
    assert.deepEqual(
      results.map((result) => result.val.tag),
      ['auth-failed', 'auth-failed'],
    );
  }
  assert.equal(requests.length, 0);
  assert.ok(globalThis.fakeHost.logs.some(([level, line]) => level === 'error' && /bot_token/.test(line)));
});

test('a lost reply is uncertain and hides the token', async () => {
  replies = [new TypeError(`NetworkError when attempting to fetch resource ${SIM}/bot${TOKEN}`)];
  const [result] = await adapter.send([text('111', 'Hi')]);
  assert.equal(result.val.tag, 'uncertain');
  assert.ok(!result.val.val.message.includes(TOKEN), result.val.val.message);
  assert.ok(!globalThis.fakeHost.logs.some(([, line]) => line.includes(TOKEN)));
});

test('an exception in the adapter is an uncertain outcome, not a trap', async () => {
  globalThis.fetch = async () => ({
    status: 200,
    headers: { get: () => undefined },
    text: async () => {
      throw new Error('stream broke');
    },
  });
  const [broken] = await adapter.send([text('111', 'Hi')]);
  assert.equal(broken.val.tag, 'uncertain');
  assert.match(broken.val.val.message, /reply broke off: stream broke/);
  globalThis.fetch = async () => null;
  const [internal] = await adapter.send([text('111', 'Hi')]);
  assert.equal(internal.val.tag, 'uncertain');
  assert.match(internal.val.val.message, /internal error in the Telegram adapter/);
});

test('the send budget hands the rest back as transient', async () => {
  globalThis.fakeHost.settings.send_budget_ms = '1';
  const slow = globalThis.fetch;
  globalThis.fetch = async (url, init) => {
    await new Promise((resolve) => setTimeout(resolve, 5));
    return slow(url, init);
  };
  const results = await adapter.send([text('111', 'a'), text('222', 'b'), text('333', 'c')]);
  assert.equal(results[0].tag, 'ok');
  assert.deepEqual(
    results.slice(1).map((result) => result.val.tag),
    ['transient', 'transient'],
  );
  assert.match(results[1].val.val.message, /1 ms budget ran out after 1 requests/);
  assert.equal(requests.length, 1);
});

test('webhooks are checked against webhook_secret', () => {
  const update = {
    method: 'POST',
    pathAndQuery: '/webhooks/telegram',
    headers: [['x-telegram-bot-api-secret-token', 'secret']],
    body: new TextEncoder().encode(
      JSON.stringify({
        update_id: 5,
        message: { message_id: 1, chat: { id: 111, type: 'private' }, date: 1767000000, text: 'hi' },
      }),
    ),
  };
  const accepted = adapter.handleWebhook(update);
  assert.equal(accepted.response.status, 200);
  assert.equal(accepted.events.length, 1);
  globalThis.fakeHost.secrets.webhook_secret = undefined;
  const refused = adapter.handleWebhook(update);
  assert.equal(refused.response.status, 401);
  assert.ok(globalThis.fakeHost.logs.some(([level, line]) => level === 'error' && /webhook_secret/.test(line)));
});
