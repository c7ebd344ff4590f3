// What the adapter declares, the `sendMessage` body and the classification
// of Telegram's replies.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';

import {
  MAX_TEXT_UTF16,
  channelInfo,
  classifyError,
  interpretReply,
  isTrue,
  redact,
  secondsToMs,
  sendBudgetMs,
  sendMessageBody,
  sendMessageUrl,
  tokenProblem,
  transportError,
} from '../src/telegram.js';

const TOKEN = '123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw';

function text(to, body) {
  return {
    idempotencyKey: 'k',
    to,
    purpose: 'marketing',
    content: { tag: 'text', val: body },
    ttlSeconds: undefined,
    attempt: 1,
  };
}

/** `[class, code]` of an `err` result. */
function classOf(result) {
  assert.equal(result.tag, 'err', JSON.stringify(result));
  const failed = result.val.tag === 'rate-limited' ? result.val.val.failure : result.val.val;
  return [result.val.tag, failed.code];
}

test('describes Telegram', () => {
  const info = channelInfo();
  assert.equal(info.name, 'telegram');
  assert.equal(info.displayName, 'Telegram Bot API');
  assert.equal(info.addressKind, 'platform-user-id');
  assert.deepEqual(info.freeForm, { tag: 'always' });
  assert.deepEqual(info.templatePurposes, []);
  assert.deepEqual(info.quietHours, []);
  assert.equal(info.limits.maxTextLength, 4096);
  assert.equal(info.limits.textUnit, 'utf16-code-units');
  assert.equal(info.limits.maxBatchSize, 10);
  assert.equal(info.limits.messagesPerSecond, 30);
  assert.deepEqual(info.egressHosts, ['api.telegram.org']);
  assert.deepEqual(info.secrets, ['bot_token', 'webhook_secret']);
  assert.deepEqual(info.settings, ['disable_notification', 'send_budget_ms']);
  assert.equal(info.deduplicates, false);
});

test('the manifest agrees with describe', async () => {
  const manifest = await readFile(new URL('../manifest.toml', import.meta.url), 'utf8');
  const info = channelInfo();
  assert.match(manifest, /^name = "telegram"$/m);
  assert.match(manifest, /^component = "switchboard_adapter_telegram.wasm"$/m);
  assert.match(manifest, /^hosts = \["api.telegram.org"\]$/m);
  assert.ok(manifest.includes(`settings = ${JSON.stringify(info.settings).replaceAll(',', ', ')}`));
  assert.ok(manifest.includes(`secrets = ${JSON.stringify(info.secrets).replaceAll(',', ', ')}`));
});

test('a text becomes a sendMessage body', () => {
  assert.deepEqual(sendMessageBody(text('123456789', 'Hi Ana')), {
    body: { chat_id: '123456789', text: 'Hi Ana' },
  });
  assert.deepEqual(sendMessageBody(text(' -1001234567890 ', 'Hi'), { disableNotification: true }), {
    body: { chat_id: '-1001234567890', text: 'Hi', disable_notification: true },
  });
});

test('length is counted in UTF-16 code units', () => {
  assert.ok(sendMessageBody(text('1', 'a'.repeat(MAX_TEXT_UTF16))).body);
  assert.deepEqual(classOf(sendMessageBody(text('1', 'a'.repeat(MAX_TEXT_UTF16 + 1))).error), [
    'invalid-content',
    '',
  ]);
  // 2,048 emoji outside the BMP are 4,096 code units; one more is too long.
  assert.ok(sendMessageBody(text('1', '😀'.repeat(2048))).body);
  const long = sendMessageBody(text('1', '😀'.repeat(2049))).error;
  assert.match(long.val.val.message, /4098 UTF-16 code units/);
});

test('empty texts, templates and non-chat addresses are refused without a request', () => {
  assert.deepEqual(classOf(sendMessageBody(text('1', ' \n ')).error), ['invalid-content', '']);
  const template = sendMessageBody({
    ...text('1', ''),
    content: { tag: 'template', val: { name: 'winback', parameters: [] } },
  }).error;
  assert.deepEqual(classOf(template), ['invalid-content', '']);
  assert.match(template.val.val.message, /no message templates: template `winback`/);
  for (const to of ['+4915112345678', '@channel', '0', '12a', '', '--1']) {
    assert.deepEqual(classOf(sendMessageBody(text(to, 'Hi')).error), ['recipient-unreachable', ''], to);
  }
});

test('bot tokens are checked for shape', () => {
  assert.equal(tokenProblem(TOKEN), undefined);
  assert.match(tokenProblem(undefined), /not configured/);
  assert.match(tokenProblem(''), /not configured/);
  assert.match(tokenProblem('abc'), /not a Telegram bot token/);
  assert.match(tokenProblem('123:abc/def'), /not a Telegram bot token/);
});

test('the URL carries the token after /bot', () => {
  assert.equal(
    sendMessageUrl('https://api.telegram.org/', TOKEN),
    `https://api.telegram.org/bot${TOKEN}/sendMessage`,
  );
});

test('ok:true gives the message id as a string', () => {
  const reply = JSON.stringify({
    ok: true,
    result: {
      message_id: 4711,
      from: { id: 123456789, is_bot: true, first_name: 'Shop', username: 'shop_bot' },
      chat: { id: 5000000001, first_name: 'Ana', type: 'private' },
      date: 1767000000,
      text: 'Hi Ana',
    },
  });
  assert.deepEqual(interpretReply(200, reply), {
    tag: 'ok',
    val: { platformMessageId: '4711', duplicate: false },
  });
});

test('a success without a message id is uncertain', () => {
  for (const body of ['', 'not json', '{"ok":true}', '{"ok":true,"result":{}}', '[]']) {
    assert.deepEqual(classOf(interpretReply(200, body)), ['uncertain', ''], body);
  }
});

test("Telegram's errors are classified", () => {
  const reply = (status, description, parameters) =>
    interpretReply(status, JSON.stringify({ ok: false, error_code: status, description, parameters }));
  const table = [
    [429, 'Too Many Requests: retry after 5', { retry_after: 5 }, 'rate-limited'],
    [401, 'Unauthorized', undefined, 'auth-failed'],
    [404, 'Not Found', undefined, 'auth-failed'],
    [403, 'Forbidden: bot was blocked by the user', undefined, 'opted-out'],
    [403, 'Forbidden: user is deactivated', undefined, 'recipient-unreachable'],
    [403, "Forbidden: bot can't initiate conversation with a user", undefined, 'recipient-unreachable'],
    [403, 'Forbidden: bot was kicked from the group chat', undefined, 'recipient-unreachable'],
    [400, 'Bad Request: chat not found', undefined, 'recipient-unreachable'],
    [400, 'Bad Request: PEER_ID_INVALID', undefined, 'recipient-unreachable'],
    [
      400,
      'Bad Request: group chat was upgraded to a supergroup chat',
      { migrate_to_chat_id: -1001234567890 },
      'recipient-unreachable',
    ],
    [400, 'Bad Request: message is too long', undefined, 'invalid-content'],
    [400, 'Bad Request: message text is empty', undefined, 'invalid-content'],
    [400, "Bad Request: can't parse entities: Unsupported start tag", undefined, 'invalid-content'],
    [400, 'Bad Request: wrong parameter action in request', undefined, 'permanent'],
    [409, 'Conflict: terminated by other getUpdates request', undefined, 'permanent'],
    [500, 'Internal Server Error', undefined, 'transient'],
    [502, 'Bad Gateway', undefined, 'transient'],
  ];
  for (const [status, description, parameters, expected] of table) {
    assert.deepEqual(classOf(reply(status, description, parameters)), [expected, String(status)], description);
  }
});

test('a 429 carries retry_after as milliseconds, scoped to the sender', () => {
  const limited = interpretReply(
    429,
    '{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}}',
  );
  assert.deepEqual(limited.val, {
    tag: 'rate-limited',
    val: {
      scope: 'sender',
      retryAfterMs: 7000,
      failure: { code: '429', message: 'Too Many Requests: retry after 7' },
    },
  });
  // Without parameters, a Retry-After header; without either, none.
  assert.equal(interpretReply(429, '', '3').val.val.retryAfterMs, 3000);
  assert.equal(classifyError(429, 'Too Many Requests').val.val.retryAfterMs, undefined);
});

test('the migrated supergroup is named', () => {
  const failure = classifyError(
    400,
    'Bad Request: group chat was upgraded to a supergroup chat',
    { migrate_to_chat_id: -1001234567890 },
  ).val.val;
  assert.match(failure.message, /supergroup -1001234567890/);
});

test('replies that are not the Bot API envelope are classified by status', () => {
  assert.deepEqual(classOf(interpretReply(502, '<html>Bad Gateway</html>')), ['transient', '502']);
  assert.deepEqual(classOf(interpretReply(400, '')), ['permanent', '400']);
  // ok:false under a 200: the error code decides.
  assert.deepEqual(
    classOf(interpretReply(200, '{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user"}')),
    ['opted-out', '403'],
  );
});

test('a request without a reply is uncertain and never shows the token', () => {
  const lost = transportError(new TypeError(`NetworkError when attempting to fetch resource ${TOKEN}`), TOKEN);
  assert.deepEqual(classOf(lost), ['uncertain', '']);
  assert.ok(!lost.val.val.message.includes(TOKEN));
  assert.match(lost.val.val.message, /<bot_token>/);
  assert.equal(redact('x', undefined), 'x');
});

test('settings are read leniently', () => {
  assert.equal(secondsToMs(2), 2000);
  assert.equal(secondsToMs(' 1.5 '), 1500);
  assert.equal(secondsToMs(-1), undefined);
  assert.equal(secondsToMs('soon'), undefined);
  assert.equal(secondsToMs(1e12), 0xffffffff);
  assert.ok(isTrue('TRUE') && isTrue(' yes ') && isTrue('1'));
  assert.ok(!isTrue('false') && !isTrue(undefined) && !isTrue(''));
  assert.equal(sendBudgetMs(undefined), 15000);
  assert.equal(sendBudgetMs('250'), 250);
  assert.equal(sendBudgetMs('-5'), 15000);
});
