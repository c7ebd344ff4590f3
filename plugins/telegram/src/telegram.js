// What the adapter knows about the Telegram Bot API's sending side: what it
// declares (`describe`), the `sendMessage` request for a message, and how
// Telegram's replies map onto the contract's send-error classes.
//
// Plain functions over plain values: no host imports, so `node --test`
// runs them as they are. The host glue is in `adapter.js`.
//
// Sources (Telegram's own documentation):
// - Bot API, https://core.telegram.org/bots/api — "Making requests" (the
//   `{ok, result}` / `{ok, error_code, description, parameters}` envelope),
//   `sendMessage` (text "1-4096 characters after entities parsing"),
//   `ResponseParameters` (`retry_after`, `migrate_to_chat_id`),
//   `MessageEntity` (offsets and lengths in UTF-16 code units).
// - Bots FAQ, https://core.telegram.org/bots/faq — "My bot is hitting
//   limits, how do I avoid this?" (about 30 messages per second for bulk
//   notifications, no more than one message per second in a single chat).

import { error, rateLimited, receipt } from './contract.js';

/** The channel's name in campaigns, configuration and webhook URLs. */
export const CHANNEL = 'telegram';
/**
 * Where the Bot API lives. Tests and private gateways point this host
 * elsewhere in the operator's configuration (`endpoints`), not here.
 */
export const BASE_URL = 'https://api.telegram.org';
/** The only host the adapter calls. */
export const EGRESS_HOST = 'api.telegram.org';

/** Setting: `true` sends every message silently (`disable_notification`). */
export const SETTING_DISABLE_NOTIFICATION = 'disable_notification';
/** Setting: how long one `send` call may keep starting requests, in ms. */
export const SETTING_SEND_BUDGET_MS = 'send_budget_ms';
/** Secret: the bot token from @BotFather, `<bot id>:<secret>`. */
export const SECRET_BOT_TOKEN = 'bot_token';
/** Secret: the `secret_token` given to `setWebhook`, echoed in every webhook. */
export const SECRET_WEBHOOK_SECRET = 'webhook_secret';

/**
 * Longest text `sendMessage` takes: "1-4096 characters after entities
 * parsing". Telegram counts in UTF-16 code units (as entity offsets are),
 * so an emoji outside the BMP counts twice. The adapter sends no
 * `parse_mode`, so the text it sends is the text Telegram counts.
 */
export const MAX_TEXT_UTF16 = 4096;
/**
 * Messages per `send` call. One `sendMessage` per message (the Bot API has
 * no multicast); a small batch spreads the cost of a fresh instance.
 */
export const MAX_BATCH_SIZE = 10;
/**
 * Default rate: the Bots FAQ's "about 30 messages per second" for bulk
 * notifications. (Its other guidance, at most one message per second in
 * one chat, is met by a campaign sending one message per recipient.)
 */
export const MESSAGES_PER_SECOND = 30;
/** Default for `send_budget_ms`: half the host's default 30 s call timeout. */
export const DEFAULT_SEND_BUDGET_MS = 15_000;

const SETTINGS = [SETTING_DISABLE_NOTIFICATION, SETTING_SEND_BUDGET_MS];
const SECRETS = [SECRET_BOT_TOKEN, SECRET_WEBHOOK_SECRET];

/** What the adapter declares about Telegram (`describe`). */
export function channelInfo() {
  return {
    name: CHANNEL,
    displayName: 'Telegram Bot API',
    // The chat id; for a user who started the bot, their user id.
    addressKind: 'platform-user-id',
    // A bot may message any user who started it, at any time; no templates.
    freeForm: { tag: 'always' },
    templatePurposes: [],
    quietHours: [],
    limits: {
      maxTextLength: MAX_TEXT_UTF16,
      textUnit: 'utf16-code-units',
      // No templates, so no rules for their parameters.
      templateParameters: {
        maxLength: undefined,
        allowNewlines: true,
        allowTabs: true,
        maxConsecutiveSpaces: undefined,
      },
      maxBatchSize: MAX_BATCH_SIZE,
      messagesPerSecond: MESSAGES_PER_SECOND,
    },
    egressHosts: [EGRESS_HOST],
    secrets: [...SECRETS],
    settings: [...SETTINGS],
    // The Bot API has no idempotency key: a resend after a lost reply can
    // deliver twice, so such a message is left uncertain.
    deduplicates: false,
  };
}

/** The length Telegram counts: UTF-16 code units (a JS string's length). */
export function utf16Length(text) {
  return text.length;
}

/** A private chat's id (a user id), a group's (negative) or a channel's (-100…). */
const CHAT_ID = /^-?[1-9][0-9]{0,19}$/;

/** A bot token as @BotFather issues it: `<bot id>:<secret>`. */
const BOT_TOKEN = /^[0-9]+:[A-Za-z0-9_-]+$/;

/**
 * The `sendMessage` body for `message`, or the error that stops it before
 * any request: content first (it is wrong whatever the configuration), then
 * the address.
 *
 * Templates are refused as `invalid-content`: Telegram has none, and the
 * adapter declares no template purposes, so the host only sends one by
 * mistake; rendering it as text would send something nobody wrote.
 */
export function sendMessageBody(message, { disableNotification = false } = {}) {
  const content = message.content;
  if (content.tag !== 'text') {
    return {
      error: error(
        'invalid-content',
        '',
        `Telegram bots have no message templates: template \`${content.val?.name ?? ''}\` is not sent; send text`,
      ),
    };
  }
  const text = content.val;
  if (text.trim() === '') {
    return { error: error('invalid-content', '', 'message text is empty') };
  }
  const length = utf16Length(text);
  if (length > MAX_TEXT_UTF16) {
    return {
      error: error(
        'invalid-content',
        '',
        `message is too long: ${length} UTF-16 code units, Telegram takes at most ${MAX_TEXT_UTF16}`,
      ),
    };
  }
  const to = message.to.trim();
  if (!CHAT_ID.test(to)) {
    return {
      error: error(
        'recipient-unreachable',
        '',
        `\`${message.to}\` is not a Telegram chat id (an integer such as 123456789)`,
      ),
    };
  }
  const body = { chat_id: to, text };
  if (disableNotification) {
    body.disable_notification = true;
  }
  return { body };
}

/** Why a bot token cannot be used, or `undefined` when it looks right. */
export function tokenProblem(token) {
  if (token === undefined || token === '') {
    return 'secret `bot_token` is not configured';
  }
  if (!BOT_TOKEN.test(token)) {
    return 'secret `bot_token` is not a Telegram bot token (`<bot id>:<secret>` from @BotFather)';
  }
  return undefined;
}

/** `{base}/bot{token}/sendMessage`, with any trailing slash of `base` dropped. */
export function sendMessageUrl(base, token) {
  return `${base.replace(/\/+$/, '')}/bot${token}/sendMessage`;
}

/** `value` with every occurrence of `secret` masked, for logs and failures. */
export function redact(value, secret) {
  const text = String(value);
  return secret ? text.split(secret).join('<bot_token>') : text;
}

/** Seconds (a number or a numeric string) as milliseconds for the contract's u32. */
export function secondsToMs(seconds) {
  const value = typeof seconds === 'string' ? Number(seconds.trim()) : seconds;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    return undefined;
  }
  return Math.min(Math.round(value * 1000), 0xffff_ffff);
}

/** The first 200 characters of a body, for failures. */
function snippet(text) {
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

const BLOCKED = /bot was blocked by the user/i;
const UNREACHABLE_400 = /chat not found|user not found|PEER_ID_INVALID|upgraded to a supergroup/i;
const INVALID_CONTENT_400 =
  /message is too long|text is empty|text must be non-empty|can't parse entities|entities|MESSAGE_TOO_LONG/i;

/**
 * The class of a Bot API error, from its HTTP status, `description` and
 * `parameters`. Telegram documents `error_code` as "subject to change" and
 * gives no list of descriptions, so the status decides and a few
 * descriptions refine it:
 *
 * | status | description | class |
 * |---|---|---|
 * | 429 | | rate-limited (sender), `parameters.retry_after` |
 * | 401, 404 | | auth-failed (a wrong token is 401, a malformed one 404) |
 * | 403 | …bot was blocked by the user | opted-out |
 * | 403 | anything else (deactivated user, bot kicked, can't initiate) | recipient-unreachable |
 * | 400 | chat not found, PEER_ID_INVALID, upgraded to a supergroup | recipient-unreachable |
 * | 400 | message is too long, text is empty, can't parse entities | invalid-content |
 * | 400, other 4xx | anything else | permanent |
 * | 5xx | | transient |
 */
export function classifyError(status, description, parameters = {}, retryAfterHeader = undefined) {
  const code = String(status);
  const words = description || `HTTP ${status}`;
  if (status === 429) {
    const retryAfterMs =
      secondsToMs(parameters?.retry_after) ?? secondsToMs(retryAfterHeader ?? undefined);
    return rateLimited('sender', retryAfterMs, code, words);
  }
  if (status === 401 || status === 404) {
    return error(
      'auth-failed',
      code,
      `${words}: Telegram does not know this bot token (check the \`bot_token\` secret)`,
    );
  }
  if (status === 403) {
    return BLOCKED.test(words)
      ? error('opted-out', code, words)
      : error('recipient-unreachable', code, words);
  }
  if (status === 400) {
    const migrated = parameters?.migrate_to_chat_id;
    if (migrated !== undefined) {
      return error(
        'recipient-unreachable',
        code,
        `${words} (the group is now the supergroup ${migrated})`,
      );
    }
    if (UNREACHABLE_400.test(words)) {
      return error('recipient-unreachable', code, words);
    }
    if (INVALID_CONTENT_400.test(words)) {
      return error('invalid-content', code, words);
    }
    return error('permanent', code, words);
  }
  if (status >= 500) {
    return error('transient', code, words);
  }
  return error('permanent', code, words);
}

/**
 * The outcome of a `sendMessage` reply: `ok:true` gives a receipt with
 * `result.message_id` (unique within its chat); an error is classified by
 * `classifyError`. A 2xx reply without a message id is `uncertain`:
 * Telegram may have sent the message, and it does not deduplicate.
 */
export function interpretReply(status, bodyText, retryAfterHeader = undefined) {
  let reply;
  try {
    reply = JSON.parse(bodyText);
  } catch {
    reply = undefined;
  }
  const isObject = reply !== null && typeof reply === 'object' && !Array.isArray(reply);
  if (status >= 200 && status < 300) {
    const id = isObject && reply.ok === true ? reply.result?.message_id : undefined;
    if (Number.isSafeInteger(id) || (typeof id === 'string' && id !== '')) {
      return receipt(String(id));
    }
    if (!isObject || reply.ok !== false) {
      return error('uncertain', '', `HTTP ${status} without a message id: \`${snippet(bodyText)}\``);
    }
  }
  if (isObject && reply.ok === false) {
    // `error_code` mirrors the HTTP status; the status is what was answered.
    const effective = status >= 200 && status < 300 ? Number(reply.error_code) || 400 : status;
    const described = typeof reply.description === 'string' ? reply.description : '';
    return classifyError(effective, described, reply.parameters ?? {}, retryAfterHeader);
  }
  // Not the Bot API's envelope (a proxy's HTML page, an empty body).
  return classifyError(status, `HTTP ${status}: \`${snippet(bodyText)}\``, {}, retryAfterHeader);
}

/**
 * The outcome of a request that got no reply. `fetch` says only
 * "NetworkError when attempting to fetch resource", whether the connection
 * was refused or reset after Telegram took the request, so the adapter
 * cannot tell: it says `uncertain`. The host can tell (the
 * `switchboard-message-index` header names the message a request carried,
 * and the host saw whether anything was written): a message whose request
 * never left is retried, one whose request left stays uncertain, since
 * Telegram does not deduplicate.
 */
export function transportError(thrown, token) {
  const name = thrown?.name ?? 'Error';
  const message = redact(`${name}: ${thrown?.message ?? thrown}`, token);
  return error('uncertain', '', `no reply from Telegram: ${message}`);
}

/** A setting's value, or `fallback` when unset or blank. */
export function settingOr(value, fallback) {
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : fallback;
}

/** `true`/`yes`/`1`/`on` (any case) as true; anything else false. */
export function isTrue(value) {
  return typeof value === 'string' && /^(true|yes|1|on)$/i.test(value.trim());
}

/** The send budget in ms from its setting: a positive integer, or the default. */
export function sendBudgetMs(value) {
  const ms = Number(settingOr(value, ''));
  return Number.isSafeInteger(ms) && ms > 0 ? ms : DEFAULT_SEND_BUDGET_MS;
}

