// Builds the adapter into a WebAssembly component with ComponentizeJS:
// `src/adapter.js` (and the modules it imports) against the world
// `channel-adapter` of `../../wit/1.1.0`, written to `dist/<component>`,
// where `<component>` is the file `manifest.toml` names.
//
//   npm run build            # rebuild only when an input changed
//   npm run build -- --force # rebuild anyway
//   npm run build -- --quiet # say nothing unless it builds
//
// ComponentizeJS's output is not byte-for-byte reproducible, and the host
// compiles (and caches) every new component it sees, which takes seconds
// for the embedded JS engine. So the build is skipped when the SHA-256 of
// its inputs (sources, package files, this script, the manifest and the
// WIT) matches the one recorded beside the last component built.

import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const witDir = join(here, '..', '..', 'wit', '1.1.0');
const world = 'channel-adapter';
const force = process.argv.includes('--force');
const quiet = process.argv.includes('--quiet');

async function filesUnder(dir, suffix) {
  const entries = await readdir(dir, { withFileTypes: true });
  const files = [];
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      files.push(...(await filesUnder(path, suffix)));
    } else if (entry.name.endsWith(suffix)) {
      files.push(path);
    }
  }
  return files.sort();
}

async function inputsDigest() {
  const inputs = [
    ...(await filesUnder(join(here, 'src'), '.js')),
    join(here, 'package.json'),
    join(here, 'package-lock.json'),
    join(here, 'build.mjs'),
    join(here, 'manifest.toml'),
    ...(await filesUnder(witDir, '.wit')),
  ];
  const hash = createHash('sha256');
  for (const path of inputs) {
    hash.update(relative(here, path));
    hash.update('\0');
    hash.update(await readFile(path));
    hash.update('\0');
  }
  return hash.digest('hex');
}

async function readOr(path, fallback) {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return fallback;
  }
}

const manifest = await readFile(join(here, 'manifest.toml'), 'utf8');
const componentName = manifest.match(/^component\s*=\s*"([^"]+)"/m)?.[1];
if (!componentName) {
  throw new Error('manifest.toml names no `component`');
}
const out = join(here, 'dist', componentName);
const stamp = `${out}.inputs-sha256`;
const digest = await inputsDigest();
if (!force && (await readOr(stamp, '')) === digest && (await readOr(out, null)) !== null) {
  if (!quiet) {
    console.log(`${relative(process.cwd(), out)} is up to date`);
  }
  process.exit(0);
}

const { componentize } = await import('@bytecodealliance/componentize-js');
const started = Date.now();
const { component } = await componentize({
  sourcePath: join(here, 'src', 'adapter.js'),
  witPath: witDir,
  worldName: world,
  // The adapter exports no `wasi:http/incoming-handler`: the host calls
  // `handle-webhook`. Kept: stdio (console output goes to the host's log),
  // random, clocks (`Date.now`) and http (`fetch` over wasi:http).
  disableFeatures: ['fetch-event'],
});
await mkdir(dirname(out), { recursive: true });
// Write then rename, so a reader never sees half a component (and two
// builds at once never write the same file).
await writeFile(`${out}.tmp.${process.pid}`, component);
await rename(`${out}.tmp.${process.pid}`, out);
await writeFile(`${stamp}.tmp.${process.pid}`, digest);
await rename(`${stamp}.tmp.${process.pid}`, stamp);
console.log(
  `built ${relative(process.cwd(), out)}: ${component.length} bytes in ${((Date.now() - started) / 1000).toFixed(1)} s`,
);
