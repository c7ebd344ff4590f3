// The secret-token check and the events of Telegram's updates.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { SECRET_HEADER, constantTimeEqual, eventsOf, handle } from '../src/webhook.js';

const SECRET = 'sim-telegram-webhook-secret';
const NOW = 1_767_000_123_456;
const BOT = { id: 123456789, is_bot: true, first_name: 'Shop', username: 'shop_bot' };

function request(update, headers = [[SECRET_HEADER, SECRET]], method = 'POST') {
  const body = typeof update === 'string' ? update : JSON.stringify(update);
  return {
    method,
    pathAndQuery: '/webhooks/telegram',
    headers: [['content-type', 'application/json'], ...headers],
    body: new TextEncoder().encode(body),
  };
}

function message(updateId, chat, text, extra = {}) {
  return {
    update_id: updateId,
    message: {
      message_id: 7,
      from: { id: chat.id, is_bot: false, first_name: 'Ana', language_code: 'en' },
      chat,
      date: 1767000000,
      text,
      ...extra,
    },
  };
}

function memberChange(updateId, before, after, type = 'private') {
  return {
    update_id: updateId,
    my_chat_member: {
      chat: { id: 5000000001, first_name: 'Ana', type },
      from: { id: 5000000001, is_bot: false, first_name: 'Ana' },
      date: 1767000001,
      old_chat_member: { user: BOT, status: before },
      new_chat_member: { user: BOT, status: after, ...(after === 'kicked' ? { until_date: 0 } : {}) },
    },
  };
}

const ANA = { id: 5000000001, first_name: 'Ana', type: 'private' };

test('compares in constant time, by value', () => {
  assert.ok(constantTimeEqual(SECRET, SECRET));
  assert.ok(!constantTimeEqual(SECRET, `${SECRET}x`));
  assert.ok(!constantTimeEqual('', SECRET));
  assert.ok(!constantTimeEqual(SECRET, ''));
  assert.ok(constantTimeEqual('', ''));
});

test('a message is an inbound event from the chat, with the update id', () => {
  const result = handle(request(message(700000001, ANA, 'Is the sale on?')), SECRET, NOW);
  assert.equal(result.response.status, 200);
  assert.equal(result.response.body.length, 0);
  assert.deepEqual(result.events, [
    {
      id: '700000001',
      occurredAtMs: 1767000000000n,
      kind: { tag: 'inbound', val: { sender: '5000000001', text: 'Is the sale on?', kind: 'text' } },
    },
  ]);
});

test('/start is an inbound message too', () => {
  const start = message(700000002, ANA, '/start', {
    entities: [{ offset: 0, length: 6, type: 'bot_command' }],
  });
  const [event] = handle(request(start), SECRET, NOW).events;
  assert.deepEqual(event.kind, {
    tag: 'inbound',
    val: { sender: '5000000001', text: '/start', kind: 'text' },
  });
});

test('messages without text are named by their kind', () => {
  const photo = message(700000003, ANA, undefined, { photo: [{ file_id: 'x' }], caption: 'look' });
  const [event] = eventsOf(photo, NOW);
  assert.deepEqual(event.kind.val, { sender: '5000000001', text: undefined, kind: 'photo' });
  assert.equal(eventsOf(message(1, ANA, undefined, { new_kind: {} }), NOW)[0].kind.val.kind, 'other');
});

test('blocking is an opt-out and unblocking an opt-in, for every purpose', () => {
  assert.deepEqual(handle(request(memberChange(11, 'member', 'kicked')), SECRET, NOW).events, [
    {
      id: '11',
      occurredAtMs: 1767000001000n,
      kind: { tag: 'opt-out', val: { address: '5000000001', purpose: undefined } },
    },
  ]);
  assert.deepEqual(handle(request(memberChange(12, 'kicked', 'member')), SECRET, NOW).events, [
    {
      id: '12',
      occurredAtMs: 1767000001000n,
      kind: { tag: 'opt-in', val: { address: '5000000001', purpose: undefined } },
    },
  ]);
});

test('other updates are accepted without events', () => {
  for (const update of [
    memberChange(13, 'left', 'member'),
    memberChange(14, 'member', 'kicked', 'group'),
    message(15, { id: -100123, title: 'Fans', type: 'supergroup' }, 'hello all'),
    { update_id: 16, edited_message: message(16, ANA, 'edit').message },
    { update_id: 17, callback_query: { id: 'q', data: 'x' } },
    { update_id: 18 },
  ]) {
    const result = handle(request(update), SECRET, NOW);
    assert.equal(result.response.status, 200);
    assert.deepEqual(result.events, [], JSON.stringify(update));
  }
});

test('a missing date falls back on the receive time', () => {
  const update = message(19, ANA, 'hi');
  delete update.message.date;
  assert.equal(eventsOf(update, NOW)[0].occurredAtMs, BigInt(NOW));
});

test('a wrong, missing or unconfigured secret token is a 401 with no events', () => {
  const update = memberChange(20, 'member', 'kicked');
  for (const [headers, expected] of [
    [[[SECRET_HEADER, 'forged']], SECRET],
    [[[SECRET_HEADER, `${SECRET} `]], SECRET],
    [[], SECRET],
    [[[SECRET_HEADER, SECRET]], undefined],
    [[[SECRET_HEADER, '']], ''],
  ]) {
    const result = handle(request(update, headers), expected, NOW);
    assert.equal(result.response.status, 401);
    assert.deepEqual(result.events, []);
  }
  // Header names arrive lowercase from the host, but any case is read.
  const mixed = handle(request(update, [['X-Telegram-Bot-Api-Secret-Token', SECRET]]), SECRET, NOW);
  assert.equal(mixed.response.status, 200);
});

test('only POST, and only JSON updates', () => {
  assert.equal(handle(request({ update_id: 1 }, undefined, 'GET'), SECRET, NOW).response.status, 405);
  for (const body of ['not json', '[1]', '{"message":{}}', '{"update_id":-1}', '\xff']) {
    const result = handle(request(body), SECRET, NOW);
    assert.equal(result.response.status, 400, body);
    assert.deepEqual(result.events, []);
  }
});
