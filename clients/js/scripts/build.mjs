// Builds the package: type-checks and writes the declarations (tsc, dist/types), bundles the ES
// module (esbuild, dist/colloquy-client.js), and copies the bundle to where the colloquy binary
// embeds it for the playground (crates/http/src/playground/colloquy-client.js, committed, so that
// `cargo build` needs no npm). With --check it writes no copy and fails when the committed copy is
// not the bundle of these sources.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as esbuild from 'esbuild';

const HERE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BUNDLE = path.join(HERE, 'dist', 'colloquy-client.js');
const EMBEDDED = path.resolve(HERE, '..', '..', 'crates', 'http', 'src', 'playground', 'colloquy-client.js');
const check = process.argv.includes('--check');

execFileSync(process.execPath, [path.join(HERE, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', HERE], {
  stdio: 'inherit',
});
const version = JSON.parse(fs.readFileSync(path.join(HERE, 'package.json'), 'utf8')).version;
await esbuild.build({
  entryPoints: [path.join(HERE, 'src', 'index.ts')],
  outfile: BUNDLE,
  bundle: true,
  format: 'esm',
  target: 'es2022',
  platform: 'browser',
  legalComments: 'none',
  banner: { js: `// @colloquy/client ${version}: built from clients/js/src by \`npm run build\`; do not edit.` },
  logLevel: 'warning',
});
const built = fs.readFileSync(BUNDLE, 'utf8');
if (check) {
  const embedded = fs.existsSync(EMBEDDED) ? fs.readFileSync(EMBEDDED, 'utf8') : null;
  if (embedded !== built) {
    console.error(
      `${path.relative(process.cwd(), EMBEDDED)} is not the bundle of clients/js/src: run \`npm run build\` in clients/js and commit it`,
    );
    process.exit(1);
  }
} else {
  fs.writeFileSync(EMBEDDED, built);
}
