// Test helper: runs the REAL StudyOn server binary for browser tests.
//
//   const server = await startServer();   // fresh temp data dir, free port
//   server.url                            // http://127.0.0.1:<port>
//   await server.restart();               // SIGTERM, wait for exit, start again (same port + data dir)
//   await server.close();                 // stop and delete the temp data dir
//
// The binary comes from $STUDYON_BIN and is started as
//   $STUDYON_BIN serve --listen 127.0.0.1:<port> --data-dir <dir> --web-dir <web/dist>
// Readiness is `GET /readyz` answering 200. Every wait here is bounded.
// Set STUDYON_TEST_LOG=1 to copy the server's output to stderr.

import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const WEB_DIR = path.resolve(HERE, '..', 'dist');

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
const KILL_TIMEOUT_MS = 5_000;
const LOG_LIMIT = 64 * 1024;

/** Every child still running, so a crashing test run never leaves one behind. */
const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** `promise`'s value, or null after `ms`; the timer never keeps the process alive. */
function within(promise, ms) {
  let timer;
  const timeout = new Promise((r) => {
    timer = setTimeout(() => r(null), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The server binary from $STUDYON_BIN; throws a clear error when it is not usable. */
export function serverBinary() {
  const bin = process.env.STUDYON_BIN;
  if (!bin) {
    throw new Error(
      'STUDYON_BIN is not set. These browser tests run the real StudyOn server: ' +
        'build it and run e.g. `STUDYON_BIN=/path/to/target/debug/studyon npm test`.',
    );
  }
  const abs = path.resolve(bin);
  if (!existsSync(abs) || !statSync(abs).isFile()) {
    throw new Error(`STUDYON_BIN=${bin} does not point at a file (resolved to ${abs}).`);
  }
  return abs;
}

function checkWebDir() {
  if (!existsSync(path.join(WEB_DIR, 'index.html'))) {
    throw new Error(`${WEB_DIR}/index.html is missing: run \`npm run build\` before \`npm test\`.`);
  }
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export class StudyOnServer {
  /** @param {{port: number, dataDir: string, ownsDataDir: boolean, bin: string, env?: Record<string, string>}} o */
  constructor(o) {
    this.bin = o.bin;
    this.env = o.env ?? {};
    this.port = o.port;
    this.dataDir = o.dataDir;
    this.ownsDataDir = o.ownsDataDir;
    this.webDir = WEB_DIR;
    this.child = null;
    this.exited = null; // Promise<{code, signal}> for the current child
    this.output = '';
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The tail of the server's stdout/stderr (for failure messages). */
  logs() {
    return this.output;
  }

  log(chunk) {
    const s = chunk.toString();
    if (process.env.STUDYON_TEST_LOG) process.stderr.write(`[studyon:${this.port}] ${s}`);
    this.output = (this.output + s).slice(-LOG_LIMIT);
  }

  /** Spawn the binary and wait (bounded) until /readyz answers 200. */
  async start() {
    if (this.child) throw new Error('server already running');
    const args = ['serve', '--listen', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir, '--web-dir', this.webDir, '--metrics-listen', '127.0.0.1:0'];
    this.log(`$ ${this.bin} ${args.join(' ')}\n`);
    // A test server owns its fresh data dir: don't let an ambient database,
    // Redis or origin setting leak in (pass `env` to startServer to opt in).
    const env = { ...process.env };
    for (const k of ['DATABASE_URL', 'REDIS_URL', 'STUDYON_PUBLIC_ORIGIN', 'STUDYON_LISTEN', 'STUDYON_DATA_DIR', 'STUDYON_WEB_DIR']) delete env[k];
    // The deliberate opt-in: ops/test.sh runs the file tests again on Postgres (+ S3 through
    // the STUDYON_S3_* settings, which pass through).
    if (process.env.STUDYON_TEST_DATABASE_URL) env.DATABASE_URL = process.env.STUDYON_TEST_DATABASE_URL;
    Object.assign(env, this.env);
    const child = spawn(this.bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    this.child = child;
    live.add(child);
    child.stdout.on('data', (c) => this.log(c));
    child.stderr.on('data', (c) => this.log(c));
    let exitInfo = null;
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        exitInfo = { code, signal };
        live.delete(child);
        resolve(exitInfo);
      });
      child.on('error', (err) => {
        this.log(`spawn error: ${err.message}\n`);
        exitInfo = { code: null, signal: null, error: err };
        live.delete(child);
        resolve(exitInfo);
      });
    });

    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (exitInfo) {
        this.child = null;
        const err = new Error(
          `studyon exited before it was ready (code ${exitInfo.code}, signal ${exitInfo.signal}).\n--- server output ---\n${this.output}`,
        );
        err.exitedEarly = true;
        throw err;
      }
      try {
        const res = await fetch(`${this.url}/readyz`, { signal: AbortSignal.timeout(2_000) });
        await res.arrayBuffer().catch(() => {});
        if (res.status === 200) return this;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    await this.stop();
    throw new Error(`studyon was not ready within ${READY_TIMEOUT_MS} ms.\n--- server output ---\n${this.output}`);
  }

  /** SIGTERM, wait for exit (bounded), SIGKILL if needed. Returns the exit info. */
  async stop() {
    const child = this.child;
    if (!child) return null;
    this.child = null;
    const exited = this.exited;
    child.kill('SIGTERM');
    let info = await within(exited, STOP_TIMEOUT_MS);
    if (!info) {
      this.log(`server did not exit ${STOP_TIMEOUT_MS} ms after SIGTERM; sending SIGKILL\n`);
      child.kill('SIGKILL');
      info = await within(exited, KILL_TIMEOUT_MS);
      if (!info) throw new Error('studyon did not exit even after SIGKILL');
    }
    return info;
  }

  /** Stop, then start again on the same port and data dir (retrying briefly if the port is not free yet). */
  async restart() {
    await this.stop();
    let lastErr;
    for (let i = 0; i < 5; i++) {
      try {
        return await this.start();
      } catch (e) {
        lastErr = e;
        if (!e.exitedEarly) throw e;
        await sleep(500);
      }
    }
    throw lastErr;
  }

  /** Stop the server and remove the temp data dir it was given. */
  async close() {
    try {
      await this.stop();
    } finally {
      if (this.ownsDataDir) await rm(this.dataDir, { recursive: true, force: true });
    }
  }
}

/**
 * Start the server on a free 127.0.0.1 port with a fresh temp data dir.
 * @param {{port?: number, dataDir?: string, env?: Record<string, string>}} [opts]
 *   env: extra environment for the server (e.g. STUDYON_LOG).
 */
export async function startServer(opts = {}) {
  const bin = serverBinary();
  checkWebDir();
  const ownsDataDir = !opts.dataDir;
  const dataDir = opts.dataDir ?? (await mkdtemp(path.join(tmpdir(), 'studyon-test-')));
  let lastErr;
  // A port picked by freePort() can be taken by someone else before the
  // server binds it; retry with a fresh one (only when no port was given).
  for (let i = 0; i < 3; i++) {
    const port = opts.port ?? (await freePort());
    const server = new StudyOnServer({ bin, port, dataDir, ownsDataDir, env: opts.env });
    try {
      return await server.start();
    } catch (e) {
      lastErr = e;
      if (!e.exitedEarly || opts.port) break;
    }
  }
  if (ownsDataDir) await rm(dataDir, { recursive: true, force: true });
  throw lastErr;
}
