// Telegram's webhooks: checking the secret token and turning an `Update`
// into the contract's events. Plain functions over plain values, tested
// with `node --test`.
//
// Sources (https://core.telegram.org/bots/api):
// - `setWebhook`: Telegram POSTs a JSON-serialised `Update` to the URL; with
//   `secret_token` set, every request carries it in the header
//   `X-Telegram-Bot-Api-Secret-Token`. Telegram does not sign the body: the
//   token is the only proof of origin, so it is compared in constant time.
// - `Update`: `update_id` (increasing; a redelivery repeats it), at most one
//   of `message`, `edited_message`, `my_chat_member`, …; `my_chat_member`
//   "For private chats, this update is received only when the bot is
//   blocked or unblocked by the user".
// - `Message` (`message_id`, `date` in Unix seconds, `chat`, `text`, …) and
//   `ChatMemberUpdated` (`chat`, `date`, `old_chat_member`,
//   `new_chat_member`, whose `status` is `member`, `kicked`, …).

import { httpResponse } from './contract.js';

/** The header Telegram puts the webhook's `secret_token` in (lowercase, as the host passes names). */
export const SECRET_HEADER = 'x-telegram-bot-api-secret-token';

/** The kinds of non-text message Telegram names, first match wins. */
const MESSAGE_KINDS = [
  'photo',
  'sticker',
  'animation',
  'video',
  'video_note',
  'voice',
  'audio',
  'document',
  'location',
  'venue',
  'contact',
  'poll',
  'dice',
  'story',
];

/** Whether two strings are equal, in time that depends only on their lengths. */
export function constantTimeEqual(given, expected) {
  const a = new TextEncoder().encode(given);
  const b = new TextEncoder().encode(expected);
  let diff = a.length ^ b.length;
  const longest = Math.max(a.length, b.length);
  for (let i = 0; i < longest; i++) {
    diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  }
  return diff === 0;
}

/** The first value of header `name` (lowercase) in the host's header list. */
export function header(request, name) {
  const found = request.headers.find(([key]) => key.toLowerCase() === name);
  return found ? found[1] : undefined;
}

/** A refusal: the status, a short body and no events. */
function refuse(status, text) {
  return { response: httpResponse(status, text, [['content-type', 'text/plain']]), events: [] };
}

/** Milliseconds since the epoch for a Unix-seconds `date`, or `fallback`. */
function dateMs(date, fallbackMs) {
  return Number.isSafeInteger(date) && date > 0 ? BigInt(date) * 1000n : BigInt(fallbackMs);
}

/** A chat id as the contract's address: the integer in decimal. */
function address(chat) {
  const id = chat?.id;
  return Number.isSafeInteger(id) || (typeof id === 'string' && /^-?[0-9]+$/.test(id))
    ? String(id)
    : undefined;
}

/** What Telegram calls a message without text. */
function messageKind(message) {
  if (typeof message.text === 'string') {
    return 'text';
  }
  return MESSAGE_KINDS.find((kind) => message[kind] !== undefined) ?? 'other';
}

/** The events of one `Update` (none for the kinds the host does not act on). */
export function eventsOf(update, nowMs) {
  const id = String(update.update_id);
  const message = update.message;
  if (message && typeof message === 'object') {
    // Customers write to the bot in their private chat with it; group
    // chatter is not a customer writing to the business.
    const sender = address(message.chat);
    if (message.chat?.type !== 'private' || sender === undefined) {
      return [];
    }
    const kind = messageKind(message);
    return [
      {
        id,
        occurredAtMs: dateMs(message.date, nowMs),
        kind: {
          tag: 'inbound',
          val: { sender, text: kind === 'text' ? message.text : undefined, kind },
        },
      },
    ];
  }
  const member = update.my_chat_member;
  if (member && typeof member === 'object') {
    const chat = address(member.chat);
    if (member.chat?.type !== 'private' || chat === undefined) {
      return [];
    }
    const now = member.new_chat_member?.status;
    const before = member.old_chat_member?.status;
    // The user blocked the bot: nothing reaches them any more.
    if (now === 'kicked') {
      return [
        {
          id,
          occurredAtMs: dateMs(member.date, nowMs),
          kind: { tag: 'opt-out', val: { address: chat, purpose: undefined } },
        },
      ];
    }
    // The user unblocked it (restarted the bot).
    if (now === 'member' && before === 'kicked') {
      return [
        {
          id,
          occurredAtMs: dateMs(member.date, nowMs),
          kind: { tag: 'opt-in', val: { address: chat, purpose: undefined } },
        },
      ];
    }
  }
  return [];
}

/**
 * The answer to a webhook request: 405 for anything but POST, 401 with no
 * events when the secret token is missing or wrong (or none is
 * configured), 400 for a body that is not an `Update`, otherwise 200 (an
 * empty body: Telegram would run a method named in a JSON answer) with the
 * update's events. Telegram redelivers an update answered with anything
 * but 2xx.
 */
export function handle(request, expectedSecret, nowMs) {
  if (request.method.toUpperCase() !== 'POST') {
    return {
      response: httpResponse(405, 'method not allowed', [
        ['allow', 'POST'],
        ['content-type', 'text/plain'],
      ]),
      events: [],
    };
  }
  const given = header(request, SECRET_HEADER);
  if (!expectedSecret || given === undefined || !constantTimeEqual(given, expectedSecret)) {
    return refuse(401, 'invalid secret token');
  }
  let update;
  try {
    update = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(request.body));
  } catch {
    return refuse(400, 'the body is not a JSON Update');
  }
  if (
    update === null ||
    typeof update !== 'object' ||
    Array.isArray(update) ||
    !Number.isSafeInteger(update.update_id) ||
    update.update_id < 0
  ) {
    return refuse(400, 'the body is not an Update: no update_id');
  }
  return { response: httpResponse(200), events: eventsOf(update, nowMs) };
}
