// A module loader hook for the tests: the contract's interfaces
// (`switchboard:channel/<interface>@<version>`) resolve to `fake-host.mjs`.

export async function resolve(specifier, context, nextResolve) {
  if (specifier.startsWith('switchboard:channel/')) {
    return { url: new URL('./fake-host.mjs', import.meta.url).href, shortCircuit: true };
  }
  return nextResolve(specifier, context);
}
