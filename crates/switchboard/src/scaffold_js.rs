//! `switchboard adapter new NAME --lang js`: a JavaScript adapter project,
//! built into a component with ComponentizeJS. The build script, the
//! contract helpers and the pinned npm lock file are the ones the Telegram
//! adapter (`plugins/telegram`) uses, and the contract's WIT is copied into
//! the project, so it builds outside this repository.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

const TELEGRAM_BUILD: &str = include_str!("../../../plugins/telegram/build.mjs");
const TELEGRAM_CONTRACT: &str = include_str!("../../../plugins/telegram/src/contract.js");
const TELEGRAM_LOCK: &str = include_str!("../../../plugins/telegram/package-lock.json");
const WIT: &str = include_str!("../../../wit/1.1.0/channel.wit");

/// Write a new JavaScript adapter project for channel `name` into
/// `dir/name`; returns the project folder.
pub fn new_js(name: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    crate::scaffold::check_name(name)?;
    let project = dir.join(name);
    if project.exists() {
        bail!(
            "{} already exists; choose another name or folder",
            project.display()
        );
    }
    let package = format!("{}-adapter", name.replace('_', "-"));
    let component = format!("{}_adapter.wasm", name);
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{package}}", &package)
            .replace("{{component}}", &component)
    };
    let build = TELEGRAM_BUILD.replace(
        "const witDir = join(here, '..', '..', 'wit', '1.1.0');",
        "const witDir = join(here, 'wit');",
    );
    if build == TELEGRAM_BUILD {
        bail!("internal: the build script template no longer names its WIT folder as expected");
    }
    let lock = TELEGRAM_LOCK.replace(
        "\"switchboard-adapter-telegram\"",
        &format!("\"{package}\""),
    );
    for folder in ["src", "test", "wit"] {
        std::fs::create_dir_all(project.join(folder))
            .with_context(|| format!("making {}", project.join(folder).display()))?;
    }
    let files: [(&str, String); 12] = [
        ("package.json", fill(PACKAGE_JSON)),
        ("package-lock.json", lock),
        ("build.mjs", build),
        (
            "manifest.toml",
            fill(
                &crate::scaffold::MANIFEST
                    .replace("messaging API\"", "messaging API (JavaScript)\""),
            ),
        ),
        ("README.md", fill(README)),
        ("Makefile", fill(MAKEFILE)),
        (".gitignore", "node_modules/\ndist/\npackage/\n".to_owned()),
        ("wit/channel.wit", WIT.to_owned()),
        ("src/contract.js", TELEGRAM_CONTRACT.to_owned()),
        ("src/adapter.js", fill(ADAPTER_JS)),
        ("src/platform.js", fill(PLATFORM_JS)),
        ("test/platform.test.js", fill(TEST_JS)),
    ];
    for (file, contents) in &files {
        let path = project.join(file);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(project)
}

const PACKAGE_JSON: &str = r#"{
  "name": "{{package}}",
  "version": "0.1.0",
  "private": true,
  "type": "module",
  "description": "Switchboard channel adapter for {{name}}, built into a WebAssembly component with ComponentizeJS.",
  "engines": {
    "node": ">=20"
  },
  "scripts": {
    "build": "node build.mjs",
    "test": "node --test test/*.test.js"
  },
  "devDependencies": {
    "@bytecodealliance/componentize-js": "0.23.0",
    "@bytecodealliance/preview2-shim": "0.25.0"
  }
}
"#;

const MAKEFILE: &str = r#"# `make package` builds the component (Node.js 20+, npm) and lays out
# package/ (what the host loads and `switchboard adapter pack` signs);
# `make test` runs the unit tests and the contract checks.
SWITCHBOARD ?= switchboard

package:
	npm ci --no-audit --no-fund
	npm run build
	mkdir -p package
	cp manifest.toml README.md dist/{{component}} package/

test: package
	npm test
	$(SWITCHBOARD) adapter test package

.PHONY: package test
"#;

const README: &str = r#"# {{name}} adapter for Switchboard (JavaScript)

A Switchboard channel adapter written in JavaScript and built into a
WebAssembly component with ComponentizeJS against the contract in `wit/`
(`switchboard:channel@1.1.0`).

## Build, check, sign, install

```sh
make package                                   # npm ci, npm run build, then package/
npm test                                       # your unit tests (Node.js 20+)
switchboard adapter test package               # the contract checks, against a stub platform
switchboard adapter keygen --out signing-key.pem
switchboard adapter pack package --key signing-key.pem --out {{name}}-0.1.0.sbpkg
switchboard adapter install {{name}}-0.1.0.sbpkg   # on the host, after trusting your key
```

## What to change

- `src/platform.js`: `describe` (address kind, limits), `requestBody` and
  `classify` (the platform's payload and error codes) — plain functions,
  tested under Node in `test/`.
- `src/adapter.js`: the calls the host makes (`describe`, `send`,
  `handleWebhook`) and the webhook check.
- `manifest.toml`: the hosts the adapter calls and the configuration keys it
  reads; they must match what `describe` declares.
"#;

const PLATFORM_JS: &str = r#"// What the adapter knows of its platform, as plain functions that need no
// host: tested under Node (test/platform.test.js).

import { error, rateLimited, receipt } from './contract.js';

/** The platform's API host (declared in manifest.toml). */
export const API = 'https://api.{{name}}.example';

/** What `describe` returns. */
export function channelInfo() {
  return {
    name: '{{name}}',
    displayName: '{{name}}',
    addressKind: 'phone-number',
    freeForm: { tag: 'always' },
    templatePurposes: [],
    quietHours: [],
    limits: {
      maxTextLength: 1000,
      textUnit: 'utf16-code-units',
      templateParameters: {
        maxLength: undefined,
        allowNewlines: true,
        allowTabs: true,
        maxConsecutiveSpaces: undefined,
      },
      maxBatchSize: 10,
      messagesPerSecond: 10,
    },
    egressHosts: ['api.{{name}}.example'],
    secrets: ['api_key', 'webhook_secret'],
    settings: [],
    deduplicates: false,
  };
}

/** The platform's JSON for one message. */
export function requestBody(message) {
  const text = message.content.tag === 'text' ? message.content.val : '';
  return { to: message.to, text, idempotency_key: message.idempotencyKey };
}

/** The platform's reply as an outcome. */
export function classify(status, body) {
  const words = String(body).slice(0, 200);
  if (status === 200 || status === 201) {
    let id;
    try {
      id = JSON.parse(body).id;
    } catch {
      id = undefined;
    }
    return receipt(id ?? '');
  }
  if (status === 401 || status === 403) return error('auth-failed', status, words);
  if (status === 429) return rateLimited('sender', undefined, status, words);
  if (status >= 500) return error('transient', status, words);
  return error('permanent', status, words);
}
"#;

const ADAPTER_JS: &str = r#"// The calls the host makes into the component.

import { secret } from 'switchboard:channel/config@1.1.0';
import { write } from 'switchboard:channel/log@1.1.0';

import { error, httpResponse } from './contract.js';
import { API, channelInfo, classify, requestBody } from './platform.js';

/** Compare two strings in time that does not depend on where they differ. */
function sameSecret(given, expected) {
  if (typeof given !== 'string' || !expected || given.length !== expected.length) return false;
  let diff = 0;
  for (let i = 0; i < expected.length; i++) diff |= given.charCodeAt(i) ^ expected.charCodeAt(i);
  return diff === 0;
}

async function sendOne(message, key) {
  if (!key) return error('auth-failed', '', 'secret `api_key` is not configured');
  let response;
  try {
    response = await fetch(`${API}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify(requestBody(message)),
    });
  } catch (thrown) {
    // Whether the request left is unknown: the host does not resend blind.
    return error('uncertain', '', `request failed: ${thrown?.message ?? thrown}`);
  }
  return classify(response.status, await response.text());
}

async function send(batch) {
  const key = secret('api_key');
  const results = [];
  for (const message of batch) {
    results.push(await sendOne(message, key));
  }
  return results;
}

function handleWebhook(request) {
  const expected = secret('webhook_secret');
  const given = request.headers.find(([name]) => name === 'x-webhook-secret')?.[1];
  if (!sameSecret(given, expected)) {
    write('warn', 'webhook refused: wrong or missing x-webhook-secret');
    return { response: httpResponse(401, 'unauthorized'), events: [] };
  }
  return { response: httpResponse(200, 'ok'), events: [] };
}

export const adapter = {
  describe: channelInfo,
  send,
  handleWebhook,
};
"#;

const TEST_JS: &str = r#"import assert from 'node:assert/strict';
import { test } from 'node:test';

import { channelInfo, classify, requestBody } from '../src/platform.js';

test('describe names the channel and its host', () => {
  const info = channelInfo();
  assert.equal(info.name, '{{name}}');
  assert.deepEqual(info.egressHosts, ['api.{{name}}.example']);
});

test('replies are classified', () => {
  assert.deepEqual(classify(200, '{"id":"m-1"}').val.platformMessageId, 'm-1');
  assert.equal(classify(401, '').val.tag, 'auth-failed');
  assert.equal(classify(429, '').val.tag, 'rate-limited');
  assert.equal(classify(503, '').val.tag, 'transient');
  assert.equal(classify(400, 'bad').val.tag, 'permanent');
});

test('the request carries the text and the idempotency key', () => {
  const body = requestBody({ to: '+4915112345678', idempotencyKey: 'k1', content: { tag: 'text', val: 'Hi' } });
  assert.deepEqual(body, { to: '+4915112345678', text: 'Hi', idempotency_key: 'k1' });
});
"#;
