// Stands in for the host's imports (`switchboard:channel/config`,
// `outcomes` and `log`) when `adapter.js` runs under Node: every function
// reads or records through `globalThis.fakeHost`, which a test sets up.

function host() {
  if (!globalThis.fakeHost) {
    throw new Error('the test set no globalThis.fakeHost');
  }
  return globalThis.fakeHost;
}

export function get(key) {
  return host().settings[key];
}

export function secret(key) {
  return host().secrets[key];
}

export function report(index, outcome) {
  host().reported.push([index, outcome]);
}

export function write(level, message) {
  host().logs.push([level, message]);
}
