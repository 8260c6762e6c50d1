// What the console's browser tests share: a temporary data directory seeded by
// `console_seed` (real phone stores synced through the hub), the CLI on it, the real
// `yibiao-server` binary on a free loopback port, Debian's Chromium driven by
// playwright-core, and signing in.
//
// Env: YIBIAO_BIN (directory of yibiao-server, console_seed, console_phone),
// PLAYWRIGHT_DIR (node_modules holding playwright-core), SCREENS (where screenshots go).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';

const require = createRequire(import.meta.url);
const { chromium } = require(require.resolve('playwright-core', { paths: [process.env.PLAYWRIGHT_DIR] }));
export const BIN = process.env.YIBIAO_BIN;
export const SCREENS = process.env.SCREENS;
mkdirSync(SCREENS, { recursive: true });

export function step(name) {
  console.log(`   console: ${name}`);
}

/// A seeded data directory and the CLI on it.
export function seeded() {
  const dir = mkdtempSync(join(tmpdir(), 'yibiao-console-'));
  const data = join(dir, 'data');
  const server = join(BIN, 'yibiao-server');
  const seed = spawnSync(join(BIN, 'console_seed'), ['--data-dir', data], { encoding: 'utf8' });
  assert.equal(seed.status, 0, seed.stderr);
  const run = (args, input) => {
    const r = spawnSync(server, ['--data-dir', data, ...args], { input, encoding: 'utf8' });
    assert.equal(r.status, 0, `yibiao-server ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  return { dir, data, server, run };
}

/// The server on a free port and a headless browser; `close(failed)` ends both (and
/// removes the data directory unless the run failed).
export async function serve({ dir, data, server }) {
  const proc = spawn(server, ['--data-dir', data, 'serve', '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const base = await new Promise((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (chunk) => {
      out += chunk;
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (m) resolve(m[1]);
    });
    proc.on('exit', (code) => reject(new Error(`server exited ${code}: ${out}`)));
  });
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update'],
  });
  const signIn = async (login, password) => {
    const context = await browser.newContext({ baseURL: base, viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    await page.goto('/login');
    await page.fill('input[name=login]', login);
    await page.fill('input[name=password]', password);
    await page.click('button[type=submit]');
    return { context, page };
  };
  const close = async (failed) => {
    await browser.close();
    proc.kill('SIGTERM');
    if (!failed) rmSync(dir, { recursive: true, force: true });
  };
  return { base, browser, signIn, close };
}
