// The contract's values (switchboard:channel@1.1.0) as componentize-js
// lifts and lowers them: records are objects with camelCase fields, enums
// are their kebab-case names, variants and results are `{tag, val}`,
// options are a value or `undefined`, `u64` is a BigInt and `list<u8>` a
// Uint8Array.
//
// Nothing here touches the host, so every module that builds contract
// values can be tested with plain Node.

/** A `failure` record: the platform's code (a string) and words for operators. */
export function failure(code, message) {
  return { code: code === undefined || code === null ? '' : String(code), message: String(message) };
}

/** `ok(receipt)`: the platform accepted the message. */
export function receipt(platformMessageId) {
  return {
    tag: 'ok',
    val: {
      platformMessageId: platformMessageId === undefined ? undefined : String(platformMessageId),
      duplicate: false,
    },
  };
}

/** `err(send-error)` of a class whose payload is a plain failure. */
export function error(tag, code, message) {
  return { tag: 'err', val: { tag, val: failure(code, message) } };
}

/** `err(rate-limited)` with a scope (`sender`, `recipient`, `quota`). */
export function rateLimited(scope, retryAfterMs, code, message) {
  return {
    tag: 'err',
    val: {
      tag: 'rate-limited',
      val: { scope, retryAfterMs, failure: failure(code, message) },
    },
  };
}

/** The failure carried by a `send-error`. */
export function failureOf(sendError) {
  return sendError.tag === 'rate-limited' || sendError.tag === 'deferred'
    ? sendError.val.failure
    : sendError.val;
}

/** An `http-response` with a text body. */
export function httpResponse(status, text = '', headers = []) {
  return { status, headers, body: new TextEncoder().encode(text) };
}
