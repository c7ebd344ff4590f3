// Switchboard channel adapter for the Telegram Bot API, in JavaScript.
//
// This file is the thin layer that talks to the host (configuration,
// per-message outcomes, logging) and to Telegram (`fetch`, which
// componentize-js routes through `wasi:http/outgoing-handler`, so the
// host checks every request against the manifest's egress hosts). The
// platform knowledge is in plain modules tested with `node --test`:
//
// - `telegram.js`: what the adapter declares, the `sendMessage` body, and
//   Telegram's replies classified into send-error classes;
// - `webhook.js`: the secret-token check and `Update` parsing;
// - `contract.js`: the contract's values as componentize-js represents them.
//
// The world is `switchboard:channel/channel-adapter@1.1.0`
// (`wit/1.1.0/channel.wit`); its export `adapter` is the object at the end.
//
// Nothing here writes to stdout or stderr (`console.*`), and no exception
// leaves an export (the engine would print it): the engine reaches stdio
// through the WASI preview 1 adapter, whose first write asks for the
// filesystem's preopened directories, which the host's sandbox refuses by
// failing the call. Logging goes through the contract's `log` import.

import { get, secret } from 'switchboard:channel/config@1.1.0';
import { report } from 'switchboard:channel/outcomes@1.1.0';
import { write } from 'switchboard:channel/log@1.1.0';

import { error, failureOf, httpResponse } from './contract.js';
import {
  BASE_URL,
  SECRET_BOT_TOKEN,
  SECRET_WEBHOOK_SECRET,
  SETTING_DISABLE_NOTIFICATION,
  SETTING_SEND_BUDGET_MS,
  channelInfo,
  interpretReply,
  isTrue,
  redact,
  sendBudgetMs,
  sendMessageBody,
  sendMessageUrl,
  tokenProblem,
  transportError,
} from './telegram.js';
import { handle } from './webhook.js';

/** The request header naming the batch message a request carries (removed by the host). */
const MESSAGE_INDEX_HEADER = 'switchboard-message-index';

/** Where and how to send, read once per call. */
function loadConfig() {
  const token = secret(SECRET_BOT_TOKEN);
  return {
    baseUrl: BASE_URL,
    token,
    tokenProblem: tokenProblem(token),
    disableNotification: isTrue(get(SETTING_DISABLE_NOTIFICATION)),
    budgetMs: sendBudgetMs(get(SETTING_SEND_BUDGET_MS)),
  };
}

/** One `sendMessage` for the message at `index`; never throws. */
async function sendOne(message, index, config) {
  const planned = sendMessageBody(message, config);
  if (planned.error) {
    return planned.error;
  }
  if (config.tokenProblem) {
    return error('auth-failed', '', config.tokenProblem);
  }
  let response;
  try {
    response = await fetch(sendMessageUrl(config.baseUrl, config.token), {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        [MESSAGE_INDEX_HEADER]: String(index),
      },
      body: JSON.stringify(planned.body),
    });
  } catch (thrown) {
    return transportError(thrown, config.token);
  }
  let text;
  try {
    text = await response.text();
  } catch (thrown) {
    // The status line came back but the body did not: Telegram had the request.
    return error(
      'uncertain',
      '',
      redact(`HTTP ${response.status}, then the reply broke off: ${thrown?.message ?? thrown}`, config.token),
    );
  }
  return interpretReply(response.status, text, response.headers.get('retry-after') ?? undefined);
}

/** Log a message that was not accepted. */
function logRefusal(message, outcome) {
  const failed = failureOf(outcome.val);
  write(
    'warn',
    `send ${message.idempotencyKey} (attempt ${message.attempt}) failed: ${outcome.val.tag} code \`${failed.code}\`: ${failed.message}`,
  );
}

/** The outcome of a message whose handling threw: the host retries it if nothing left. */
function internalError(thrown) {
  return error(
    'uncertain',
    '',
    `internal error in the Telegram adapter: ${thrown?.name ?? 'Error'}: ${thrown?.message ?? thrown}`,
  );
}

async function send(batch) {
  const started = Date.now();
  const config = loadConfig();
  if (config.tokenProblem) {
    write('error', `cannot send: ${config.tokenProblem}`);
  }
  const results = [];
  let made = 0;
  for (let index = 0; index < batch.length; index++) {
    const message = batch[index];
    let outcome;
    // The first message is always tried, so every call makes progress
    // however slowly the instance started.
    if (made > 0 && Date.now() - started >= config.budgetMs) {
      outcome = error(
        'transient',
        '',
        `not sent: this call's ${config.budgetMs} ms budget ran out after ${made} requests; it is sent on the retry`,
      );
    } else {
      try {
        outcome = await sendOne(message, index, config);
      } catch (thrown) {
        outcome = internalError(thrown);
      }
      made += 1;
    }
    // Reported as soon as known: a call cut short keeps what it achieved.
    report(index, outcome);
    if (outcome.tag === 'err') {
      logRefusal(message, outcome);
    }
    results.push(outcome);
  }
  return results;
}

function handleWebhook(request) {
  const expected = secret(SECRET_WEBHOOK_SECRET);
  if (!expected) {
    write('error', 'webhook refused: secret `webhook_secret` is not configured');
  }
  let result;
  try {
    result = handle(request, expected, Date.now());
  } catch (thrown) {
    // Telegram redelivers an update answered with an error.
    write('error', `webhook failed: ${thrown?.name ?? 'Error'}: ${thrown?.message ?? thrown}`);
    return { response: httpResponse(500, 'internal error'), events: [] };
  }
  if (result.response.status !== 200) {
    write(
      'warn',
      `webhook refused with HTTP ${result.response.status}: ${new TextDecoder().decode(result.response.body)}`,
    );
  }
  return result;
}

export const adapter = {
  describe: channelInfo,
  send,
  handleWebhook,
};
