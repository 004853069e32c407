// Compatibility of the stock npm Yjs clients with the real server's co-edited post
// bodies (src/ws/PROTOCOL.md, "Co-edited post bodies (binary frames)"). No browser:
// node runs `y-websocket` (against `/ws/doc/{post_id}`) and `@hocuspocus/provider`
// (against `/ws?binary=1`, documents named `post/{post_id}`) as they ship, with `ws`
// as the WebSocket (a subclass adding the session cookie and the Origin header).
// Every provider is built with BroadcastChannel off: two providers in one process
// would otherwise sync through it and not through the server.
//
// 1. y-websocket: an edit made offline before the first connect, edits made in the
//    same tick by two members, interleaved typing, and an offline stretch with a
//    reconnect all converge; a fresh client and the HTTP body agree.
// 2. y-websocket awareness: a peer's {user:{name,color}} arrives; a provider that is
//    destroyed, and one whose socket dies without a goodbye, disappear from the peer.
// 3. @hocuspocus/provider: one socket carries two documents; both sync with
//    y-websocket clients both ways; `synced` fires, scope is `read-write`, and
//    `unsyncedChanges` goes back to 0 after edits (the server's sync status).
// 4. A locked post: a member's open hocuspocus document turns `readonly` live (one opened
//    later is `readonly` at once), its edits and a member's y-websocket edit are refused
//    (and reach no one, nor the HTTP body) while the leader's edit does; unlocking makes
//    the documents `read-write` again.
// 5. Removing a member closes their y-websocket with 4403 and it does not reconnect;
//    their hocuspocus document is refused with `removed`.
// 6. An HTTP PATCH of the body reaches two live y-websocket editors.
// 7. A read-only client that made no edits is not refused on opening (its handshake step 2
//    adds nothing), and a member whose edit was refused while locked edits again after the
//    unlock (the server asks it for the missing blocks). Both were server bugs found here.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, afterEach, before, test } from 'node:test';
import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider';
import * as decoding from 'lib0/decoding';
import WebSocket from 'ws';
import { WebsocketProvider } from 'y-websocket';
import * as Y from 'yjs';
import { startServer } from './server.mjs';
import { api, waitUntil } from './api.mjs';

/** Bound for every wait on something that should arrive live. */
const LIVE_MS = 10_000;
/** The HTTP body copy follows the document within ~2 s. */
const BODY_MS = 5_000;
/** How long a refused edit or a closed socket is watched for not coming back. */
const QUIET_MS = 2_000;

let server;
let client;

before(async () => {
  server = await startServer();
  client = api(server);
});

after(async () => {
  await server?.close();
});

/** Everything a test opened (providers, sockets, docs), closed after it whatever happened. */
let opened = [];
afterEach(async () => {
  const all = opened.reverse();
  opened = [];
  for (const close of all) {
    try {
      close();
    } catch {
      // already closed
    }
  }
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const call = (...args) => client.call(...args);

/**
 * `ws`'s WebSocket with `who`'s session cookie and the server's Origin on the upgrade;
 * every socket it makes is pushed to `made` (to count connects).
 */
function socketClassFor(who, made = []) {
  const headers = { Cookie: `studyon_session=${who.session}`, Origin: server.url };
  return class StudyOnSocket extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols, { headers });
      made.push(this);
    }
  };
}

/**
 * A stock y-websocket provider on `/ws/doc/{postId}` as `who`.
 * Returns {doc, provider, text(), sockets, refusals} where `refusals` lists the reasons of
 * y-protocols' permission-denied messages (`2 0 reason`) the server sent.
 */
function yws(who, postId, { doc = new Y.Doc(), connect = true } = {}) {
  const sockets = [];
  const provider = new WebsocketProvider(server.url.replace(/^http/, 'ws') + '/ws/doc', String(postId), doc, {
    WebSocketPolyfill: socketClassFor(who, sockets),
    resyncInterval: -1,
    disableBc: true,
    connect: false,
  });
  const refusals = [];
  const closes = [];
  // The provider's own handler table (a per-instance copy): note auth messages, then
  // let y-websocket handle them as usual.
  const authHandler = provider.messageHandlers[2];
  provider.messageHandlers[2] = (encoder, decoder, prov, emitSynced, type) => {
    const peek = decoding.clone(decoder);
    if (decoding.readVarUint(peek) === 0) refusals.push(decoding.readVarString(peek));
    const warn = console.warn;
    console.warn = () => {}; // y-websocket warns "Permission denied …": expected here
    try {
      return authHandler(encoder, decoder, prov, emitSynced, type);
    } finally {
      console.warn = warn;
    }
  };
  provider.on('connection-close', (event) => closes.push(event ? event.code : null));
  opened.push(() => doc.destroy());
  opened.push(() => provider.awareness.destroy());
  opened.push(() => provider.destroy());
  if (connect) provider.connect();
  return { doc, provider, sockets, refusals, closes, ytext: doc.getText('body'), text: () => doc.getText('body').toString() };
}

/** One stock HocuspocusProviderWebsocket on `/ws?binary=1` as `who`; `sockets` counts connects. */
function hocuspocusSocket(who) {
  const sockets = [];
  const socket = new HocuspocusProviderWebsocket({
    url: server.url.replace(/^http/, 'ws') + '/ws?binary=1',
    WebSocketPolyfill: socketClassFor(who, sockets),
    // one attempt is enough on 127.0.0.1; a failed test must not keep retrying
    maxAttempts: 1,
  });
  opened.push(() => socket.destroy());
  return { socket, sockets };
}

/**
 * A stock HocuspocusProvider for `post/{postId}` on a shared socket; records its
 * authentication, refusals and stateless payloads.
 */
function hocuspocusDoc(socket, postId) {
  const doc = new Y.Doc();
  const seen = { scopes: [], failures: [], stateless: [], synced: 0 };
  const provider = new HocuspocusProvider({
    websocketProvider: socket,
    name: `post/${postId}`,
    document: doc,
    token: 'ignored: the cookie decides',
    onAuthenticated: ({ scope }) => seen.scopes.push(scope),
    onAuthenticationFailed: ({ reason }) => seen.failures.push(reason),
    onStateless: ({ payload }) => seen.stateless.push(JSON.parse(payload)),
    onSynced: () => seen.synced++,
  });
  provider.attach();
  opened.push(() => doc.destroy());
  opened.push(() => provider.destroy());
  return { doc, provider, seen, ytext: doc.getText('body'), text: () => doc.getText('body').toString() };
}

/** A leader, two members (a wrote the post) and a post with `body`. */
async function setup(body) {
  const suffix = randomBytes(3).toString('hex');
  const leader = await client.signup(`Lead ${suffix}`, 'y');
  const a = await client.signup(`Ann ${suffix}`, 'y');
  const b = await client.signup(`Ben ${suffix}`, 'y');
  const studyId = await client.studyWith(leader, [a, b], `Yjs compat ${suffix}`);
  const task = await call(leader.session, 'POST', `/api/studies/${studyId}/tasks`, { title: `Notes ${suffix}` });
  assert.equal(task.status, 201, JSON.stringify(task.body));
  const newPost = async (text) => {
    const created = await call(a.session, 'POST', `/api/studies/${studyId}/tasks/${task.body.task.id}/posts`, {
      title: `Shared ${randomBytes(3).toString('hex')}`,
      body: text,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    return created.body.post.id;
  };
  const postId = await newPost(body);
  return { leader, a, b, studyId, postId, newPost };
}

/** The post body the server serves over HTTP. */
async function httpBody(who, studyId, postId) {
  const res = await call(who.session, 'GET', `/api/studies/${studyId}/posts/${postId}`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.post.body;
}

/** Waits until the HTTP body is `expected` (the copy is refreshed from the document). */
async function waitHttpBody(who, studyId, postId, expected) {
  let seen;
  await waitUntil(
    () => `the HTTP body ${JSON.stringify(expected)} (last seen ${JSON.stringify(seen)})`,
    async () => (seen = await httpBody(who, studyId, postId)) === expected,
    BODY_MS,
  );
}

async function waitSynced(c, who = 'a provider') {
  await waitUntil(`${who} to sync`, () => c.provider.synced, LIVE_MS);
}

/** Waits until every client's text is `expected`; the failure shows what each had. */
async function waitTexts(clients, expected, what) {
  await waitUntil(
    () => `${what}: ${JSON.stringify(expected)} everywhere, seen ${JSON.stringify(clients.map((c) => c.text()))}`,
    () => clients.every((c) => c.text() === expected),
    LIVE_MS,
  );
}

/** A fresh y-websocket client (empty doc) syncs to `expected`: the server holds that text. */
async function serverHolds(who, postId, expected) {
  const fresh = yws(who, postId);
  await waitSynced(fresh, 'a fresh client');
  assert.equal(fresh.text(), expected, 'a fresh client syncs to the converged text');
  fresh.provider.destroy();
}

test('y-websocket: offline, concurrent and interleaved edits by two members converge, and the server keeps the result', { timeout: 90_000 }, async () => {
  const { leader, a, b, studyId, postId } = await setup('Hello world.');

  const ca = yws(a, postId);
  await waitSynced(ca, 'Ann');
  assert.equal(ca.text(), 'Hello world.', 'the post body seeds the document');

  // Ben's doc gets an edit before its provider ever connected (it has not seen the seed),
  // while Ann edits online.
  const docB = new Y.Doc();
  docB.getText('body').insert(0, 'Offline first. ');
  ca.ytext.insert(ca.ytext.length, ' From Ann.');
  const cb = yws(b, postId, { doc: docB });
  await waitSynced(cb, 'Ben');
  await waitUntil(
    () => `Ann and Ben to converge after Ben's offline edit, seen ${JSON.stringify([ca.text(), cb.text()])}`,
    () => ca.text() === cb.text() && ca.text().includes('Offline first. ') && ca.text().includes('Hello world. From Ann.'),
    LIVE_MS,
  );
  // Where a concurrent insert into an empty text lands depends on the client ids; both are fine.
  assert.ok(
    ['Offline first. Hello world. From Ann.', 'Hello world. From Ann.Offline first. '].includes(ca.text()),
    `nothing lost or doubled: ${JSON.stringify(ca.text())}`,
  );

  // Both edit in the same tick, neither having seen the other: Ann inserts at the start and
  // deletes a word, Ben appends.
  let base = ca.text();
  assert.equal(cb.text(), base);
  ca.ytext.insert(0, '[A] ');
  const world = base.indexOf('world');
  ca.ytext.delete(4 + world, 'world'.length);
  cb.ytext.insert(cb.ytext.length, ' [B]');
  let expected = `[A] ${base.slice(0, world)}${base.slice(world + 'world'.length)} [B]`;
  await waitTexts([ca, cb], expected, 'concurrent edits');

  // Interleaved typing, one update per character: Ann at the start, Ben at the end.
  const annTypes = 'abcdefghijklmno';
  const benTypes = '0123456789ABCDE';
  for (let i = 0; i < annTypes.length; i++) {
    ca.ytext.insert(i, annTypes[i]);
    cb.ytext.insert(cb.ytext.length, benTypes[i]);
    await sleep(15);
  }
  expected = annTypes + expected + benTypes;
  await waitTexts([ca, cb], expected, 'interleaved typing');

  // Ben goes offline, replaces a word; Ann appends meanwhile; Ben reconnects.
  cb.provider.disconnect();
  await waitUntil('Ben to be disconnected', () => !cb.provider.wsconnected && cb.provider.ws === null, LIVE_MS);
  base = ca.text();
  const hello = cb.text().indexOf('Hello');
  cb.ytext.delete(hello, 'Hello'.length);
  cb.ytext.insert(hello, 'Howdy');
  ca.ytext.insert(ca.ytext.length, ' Ann online.');
  await sleep(300);
  assert.ok(!ca.text().includes('Howdy'), 'an offline edit is not sent');
  cb.provider.connect();
  expected = base.replace('Hello', 'Howdy') + ' Ann online.';
  await waitTexts([ca, cb], expected, 'after Ben reconnects');

  // The server agrees: a third, fresh client (the leader) and, after the debounce, HTTP.
  await serverHolds(leader, postId, expected);
  await waitHttpBody(leader, studyId, postId, expected);
  assert.deepEqual(ca.refusals, [], 'nothing of Ann’s was refused');
  assert.deepEqual(cb.refusals, [], 'nothing of Ben’s was refused');
});

test('y-websocket awareness: a peer’s state arrives and goes away with its provider or its socket', { timeout: 60_000 }, async () => {
  const { a, b, postId } = await setup('Awareness.');
  const cb = yws(b, postId);
  await waitSynced(cb, 'Ben');

  const ca = yws(a, postId);
  // Ann claims another name: the server writes her own display name and id over it.
  ca.provider.awareness.setLocalStateField('user', { name: 'The Leader', color: '#e0457b' });
  await waitSynced(ca, 'Ann');
  const annId = ca.doc.clientID;
  const annName = a.user.display_name;
  await waitUntil(
    () => `Ann's awareness at Ben, seen ${JSON.stringify([...cb.provider.awareness.getStates()])}`,
    () => cb.provider.awareness.getStates().get(annId)?.user?.name === annName,
    LIVE_MS,
  );
  assert.deepEqual(cb.provider.awareness.getStates().get(annId), { user: { name: annName, id: a.user.id, color: '#e0457b' } });
  // A change of state travels too.
  ca.provider.awareness.setLocalStateField('cursor', { anchor: 3 });
  await waitUntil('Ann’s cursor at Ben', () => cb.provider.awareness.getStates().get(annId)?.cursor?.anchor === 3, LIVE_MS);

  // Destroying the provider: Ben drops Ann.
  ca.provider.destroy();
  await waitUntil('Ben to drop Ann after her provider is destroyed', () => !cb.provider.awareness.getStates().has(annId), LIVE_MS);

  // A second editor whose socket dies without a word (no awareness goodbye from the
  // client): the server removes its state when the socket goes.
  const cz = yws(a, postId);
  cz.provider.awareness.setLocalStateField('user', { name: 'Zed', color: '#3366ff' });
  await waitSynced(cz, 'the second editor');
  const zedId = cz.doc.clientID;
  await waitUntil('the second editor’s awareness at Ben', () => cb.provider.awareness.getStates().get(zedId)?.user?.color === '#3366ff', LIVE_MS);
  cz.provider.shouldConnect = false; // so the provider does not reconnect after the kill
  cz.provider.ws.terminate();
  await waitUntil('Ben to drop a peer whose socket died', () => !cb.provider.awareness.getStates().has(zedId), LIVE_MS);
  assert.ok(cb.provider.wsconnected, 'Ben is still connected');
});

test('@hocuspocus/provider over /ws?binary=1: two documents on one socket sync with y-websocket clients', { timeout: 90_000 }, async () => {
  const { a, b, studyId, postId: post1, newPost } = await setup('First post.');
  const post2 = await newPost('Second post.');

  const { socket, sockets } = hocuspocusSocket(a);
  const h1 = hocuspocusDoc(socket, post1);
  const h2 = hocuspocusDoc(socket, post2);
  await waitUntil('both hocuspocus documents to sync', () => h1.provider.synced && h2.provider.synced, LIVE_MS);
  assert.equal(sockets.length, 1, 'both documents share one socket');
  assert.ok(h1.seen.synced >= 1 && h2.seen.synced >= 1, '`synced` fired for each document');
  assert.deepEqual(h1.seen.scopes, ['read-write']);
  assert.deepEqual(h2.seen.scopes, ['read-write']);
  assert.equal(h1.provider.authorizedScope, 'read-write');
  assert.equal(h1.text(), 'First post.');
  assert.equal(h2.text(), 'Second post.');
  await waitUntil(
    () => `unsyncedChanges 0 after the handshake (seen ${h1.provider.unsyncedChanges}, ${h2.provider.unsyncedChanges})`,
    () => h1.provider.unsyncedChanges === 0 && h2.provider.unsyncedChanges === 0,
    LIVE_MS,
  );

  // Ben follows both posts with y-websocket.
  const w1 = yws(b, post1);
  const w2 = yws(b, post2);
  await waitSynced(w1, 'Ben on post 1');
  await waitSynced(w2, 'Ben on post 2');
  assert.equal(w1.text(), 'First post.');
  assert.equal(w2.text(), 'Second post.');

  // Awareness travels between the two clients, per document.
  h1.provider.setAwarenessField('user', { name: 'Ann', color: '#e0457b' });
  await waitUntil(
    'Ann’s hocuspocus awareness at Ben’s y-websocket',
    () => w1.provider.awareness.getStates().get(h1.doc.clientID)?.user?.name === a.user.display_name,
    LIVE_MS,
  );
  // (A state still at clock 0, like a fresh Awareness' `{}`, is ignored by Yjs receivers: set one.)
  h2.provider.setAwarenessField('user', { name: 'Ann (2)', color: '#e0457c' });
  await waitUntil('the second document’s awareness at Ben', () => w2.provider.awareness.getStates().get(h2.doc.clientID)?.user?.color === '#e0457c', LIVE_MS);
  assert.ok(!w2.provider.awareness.getStates().has(h1.doc.clientID), 'awareness stays within its document');
  w1.provider.awareness.setLocalStateField('user', { name: 'Ben', color: '#3366ff' });
  await waitUntil(
    'Ben’s y-websocket awareness at Ann’s hocuspocus',
    () => h1.provider.awareness.getStates().get(w1.doc.clientID)?.user?.name === b.user.display_name,
    LIVE_MS,
  );

  // hocuspocus → y-websocket, a few updates per document; each stored update is acknowledged.
  for (const [i, word] of [' one', ' two', ' three'].entries()) {
    h1.ytext.insert(h1.ytext.length, word);
    h2.ytext.insert(0, `${i}`);
  }
  assert.ok(h1.provider.unsyncedChanges >= 1, 'an edit counts as unsynced until the server says it is stored');
  assert.ok(h1.provider.hasUnsyncedChanges);
  await waitTexts([h1, w1], 'First post. one two three', 'post 1 from hocuspocus');
  await waitTexts([h2, w2], '210Second post.', 'post 2 from hocuspocus');
  await waitUntil(
    () => `unsyncedChanges back to 0 (seen ${h1.provider.unsyncedChanges}, ${h2.provider.unsyncedChanges})`,
    () => h1.provider.unsyncedChanges === 0 && h2.provider.unsyncedChanges === 0,
    LIVE_MS,
  );

  // y-websocket → hocuspocus, and an edit in the same tick on both sides.
  w1.ytext.insert(0, 'B: ');
  h1.ytext.insert(h1.ytext.length, '!');
  w2.ytext.delete(0, 3);
  await waitTexts([h1, w1], 'B: First post. one two three!', 'post 1 both ways');
  await waitTexts([h2, w2], 'Second post.', 'post 2 from y-websocket');
  await waitUntil('unsyncedChanges back to 0 again', () => h1.provider.unsyncedChanges === 0, LIVE_MS);

  // Closing one document leaves the other working on the same socket.
  h2.provider.destroy();
  h1.ytext.insert(0, '> ');
  await waitTexts([h1, w1], '> B: First post. one two three!', 'post 1 after post 2 was closed');
  await waitUntil('Ben to drop the closed document’s awareness', () => !w2.provider.awareness.getStates().has(h2.doc.clientID), LIVE_MS);
  w2.ytext.insert(w2.ytext.length, ' Still here.');
  await sleep(300);
  assert.equal(sockets.length, 1, 'still one socket');
  assert.equal(h1.seen.failures.length, 0, `no refusals: ${JSON.stringify(h1.seen.failures)}`);
  assert.deepEqual(h1.seen.stateless, []);

  await serverHolds(b, post1, '> B: First post. one two three!');
  await waitHttpBody(a, studyId, post1, '> B: First post. one two three!');
  await waitHttpBody(a, studyId, post2, 'Second post. Still here.');
});

test('a locked post: members are read-only for both clients, the leader still edits', { timeout: 90_000 }, async () => {
  const { leader, a, b, studyId, postId } = await setup('Locked soon.');

  // Ann watches with y-websocket; Ben is connected with both clients before the lock.
  const ca = yws(a, postId);
  const cb = yws(b, postId);
  const { socket: bSocket } = hocuspocusSocket(b);
  const hb = hocuspocusDoc(bSocket, postId);
  await waitSynced(ca, 'Ann');
  await waitSynced(cb, 'Ben');
  await waitUntil('Ben’s hocuspocus document to sync', () => hb.provider.synced, LIVE_MS);
  assert.deepEqual(hb.seen.scopes, ['read-write']);

  const locked = await call(leader.session, 'PUT', `/api/studies/${studyId}/posts/${postId}/lock`, { locked: true });
  assert.equal(locked.status, 200, JSON.stringify(locked.body));
  assert.equal(locked.body.post.locked, true);

  // Ben's open hocuspocus document turns read-only live; one opened after the lock (Ann,
  // the author but not the leader) is read-only from the start; the leader's is not.
  await waitUntil(() => `Ben's scope to turn readonly (seen ${JSON.stringify(hb.seen.scopes)})`, () => hb.provider.authorizedScope === 'readonly', LIVE_MS);
  assert.deepEqual(hb.seen.scopes, ['read-write', 'readonly']);
  const { socket: aSocket } = hocuspocusSocket(a);
  const ha = hocuspocusDoc(aSocket, postId);
  const { socket: lSocket } = hocuspocusSocket(leader);
  const hl = hocuspocusDoc(lSocket, postId);
  await waitUntil(
    'Ann’s and the leader’s hocuspocus documents to authenticate and sync',
    () => ha.provider.synced && hl.provider.synced && ha.seen.scopes.length > 0 && hl.seen.scopes.length > 0,
    LIVE_MS,
  );
  assert.deepEqual(ha.seen.scopes, ['readonly'], 'a member who is not the leader is read-only');
  assert.deepEqual(hl.seen.scopes, ['read-write'], 'the leader may write');
  assert.equal(ha.text(), 'Locked soon.', 'read-only still reads');

  // Ben's y-websocket edit is refused with `post_locked`.
  cb.ytext.insert(cb.ytext.length, ' Ben was here.');
  await waitUntil(() => `the refusal of Ben's y-websocket edit (seen ${JSON.stringify(cb.refusals)})`, () => cb.refusals.length > 0, LIVE_MS);
  assert.deepEqual(cb.refusals, ['post_locked']);
  // Ben's hocuspocus edit is refused too (a stateless error; the change stays unsynced).
  hb.ytext.insert(0, 'Ben again. ');
  await waitUntil(() => `the stateless error for Ben's hocuspocus edit (seen ${JSON.stringify(hb.seen.stateless)})`, () => hb.seen.stateless.length > 0, LIVE_MS);
  assert.equal(hb.seen.stateless[0].type, 'error');
  assert.equal(hb.seen.stateless[0].code, 'post_locked');
  assert.ok(hb.provider.unsyncedChanges >= 1, 'a refused edit is not acknowledged as stored');

  // The leader's edit reaches everyone, Ben's do not.
  hl.ytext.insert(hl.ytext.length, ' Leader edit.');
  let expected = 'Locked soon. Leader edit.';
  await waitTexts([ca, ha, hl], expected, 'the leader’s edit');
  await waitUntil('the leader’s edit at Ben (y-websocket)', () => cb.text().includes('Leader edit.'), LIVE_MS);
  await waitUntil('the leader’s edit at Ben (hocuspocus)', () => hb.text().includes('Leader edit.'), LIVE_MS);
  await waitUntil('the leader’s edit acknowledged', () => hl.provider.unsyncedChanges === 0, LIVE_MS);
  await sleep(QUIET_MS);
  assert.equal(ca.text(), expected, 'Ben’s refused edits never reached Ann');
  assert.equal(hl.text(), expected, 'Ben’s refused edits never reached the leader');
  await serverHolds(a, postId, expected);
  await waitHttpBody(a, studyId, postId, expected);
  assert.ok(cb.provider.wsconnected, 'a refused edit does not cost Ben his connection');
  assert.deepEqual(ca.refusals, []);

  // Unlocking: the open hocuspocus documents become writable live, and Ann's edit goes through.
  const unlocked = await call(leader.session, 'PUT', `/api/studies/${studyId}/posts/${postId}/lock`, { locked: false });
  assert.equal(unlocked.status, 200, JSON.stringify(unlocked.body));
  await waitUntil(
    () => `the scopes back to read-write (seen ${JSON.stringify([ha.seen.scopes, hb.seen.scopes])})`,
    () => ha.provider.authorizedScope === 'read-write' && hb.provider.authorizedScope === 'read-write',
    LIVE_MS,
  );
  ha.ytext.insert(0, 'Open again. ');
  expected = `Open again. ${expected}`;
  await waitTexts([ca, ha, hl], expected, 'Ann’s edit after the unlock');
  assert.equal(ha.provider.unsyncedChanges, 0);
  await waitHttpBody(leader, studyId, postId, expected);
});

// On opening, the server's sync step 1 is answered with the client's step 2 (empty when it
// made no edits): that is no write, so a read-only client must not be refused for it (and
// hocuspocus' `unsyncedChanges` must go back to 0).
test('a read-only client that made no edits is not refused on opening', { timeout: 60_000 }, async () => {
  const { leader, a, b, studyId, postId } = await setup('Locked from the start.');
  const res = await call(leader.session, 'PUT', `/api/studies/${studyId}/posts/${postId}/lock`, { locked: true });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const cb = yws(b, postId);
  const { socket } = hocuspocusSocket(a);
  const ha = hocuspocusDoc(socket, postId);
  await waitSynced(cb, 'Ben');
  await waitUntil('Ann’s hocuspocus document to sync', () => ha.provider.synced && ha.seen.scopes.length > 0, LIVE_MS);
  assert.deepEqual(ha.seen.scopes, ['readonly']);
  await sleep(QUIET_MS / 2);
  assert.deepEqual(cb.refusals, [], 'y-websocket: nothing to refuse');
  assert.deepEqual(ha.seen.stateless, [], 'hocuspocus: no error');
  assert.equal(ha.provider.unsyncedChanges, 0, 'hocuspocus: nothing unsynced');
});

// A member whose edit was refused while the post was locked holds that edit in their Y.Doc;
// after the unlock, their later edits build on it. The server must ask for what it lacks
// instead of holding those edits back (the refused edit then arrives too).
test('after an unlock, a member whose edit was refused while locked can edit again', { timeout: 60_000 }, async () => {
  const { leader, a, b, studyId, postId } = await setup('Probe.');
  const ca = yws(a, postId);
  const cb = yws(b, postId);
  await waitSynced(ca, 'Ann');
  await waitSynced(cb, 'Ben');
  const lock = async (locked) => {
    const res = await call(leader.session, 'PUT', `/api/studies/${studyId}/posts/${postId}/lock`, { locked });
    assert.equal(res.status, 200, JSON.stringify(res.body));
  };
  await lock(true);
  cb.ytext.insert(0, 'Refused. ');
  await waitUntil('the refusal', () => cb.refusals.length > 0, LIVE_MS);
  await lock(false);
  cb.ytext.insert(cb.ytext.length, ' After unlock.');
  await waitUntil(
    () => `Ben's post-unlock edit at Ann (Ann has ${JSON.stringify(ca.text())}, Ben ${JSON.stringify(cb.text())})`,
    () => ca.text().includes('After unlock.'),
    LIVE_MS / 2,
  );
});

test('removing a member closes their y-websocket with 4403 and it stays closed', { timeout: 60_000 }, async () => {
  const { leader, a, b, studyId, postId } = await setup('Before removal.');
  const ca = yws(a, postId);
  const cb = yws(b, postId);
  await waitSynced(ca, 'Ann');
  await waitSynced(cb, 'Ben');
  const { socket: bSocket } = hocuspocusSocket(b);
  const hb = hocuspocusDoc(bSocket, postId);
  await waitUntil('Ben’s hocuspocus document to sync', () => hb.provider.synced, LIVE_MS);
  const closed = [];
  cb.provider.on('closed', (event) => closed.push(event));

  const removed = await call(leader.session, 'POST', `/api/studies/${studyId}/members/${b.user.id}/remove`, { ban: false });
  assert.ok(removed.status < 300, JSON.stringify(removed.body));

  await waitUntil(() => `Ben's y-websocket to close (closes seen ${JSON.stringify(cb.closes)})`, () => closed.length > 0, LIVE_MS);
  assert.equal(closed[0].code, 4403);
  assert.deepEqual(cb.closes, [4403]);
  assert.equal(cb.provider.shouldConnect, false, 'y-websocket gave up (a 44xx close is final)');
  await waitUntil(() => `Ben's hocuspocus document to be refused (seen ${JSON.stringify(hb.seen.failures)})`, () => hb.seen.failures.length > 0, LIVE_MS);
  assert.deepEqual(hb.seen.failures, ['removed']);

  await sleep(QUIET_MS);
  assert.equal(cb.sockets.length, 1, 'no reconnect attempt');
  assert.equal(cb.provider.ws, null);
  assert.equal(cb.provider.wsconnected, false);

  // Ann is unaffected and still edits.
  ca.ytext.insert(ca.ytext.length, ' After.');
  await serverHolds(a, postId, 'Before removal. After.');
  // A new connection by Ben is refused at once with 4403.
  const again = yws(b, postId);
  await waitUntil(() => `Ben's new connection to be refused (closes ${JSON.stringify(again.closes)})`, () => again.closes.length > 0, LIVE_MS);
  assert.equal(again.closes[0], 4403);
  assert.equal(again.provider.synced, false);
  assert.equal(again.text(), '', 'nothing of the document reached a non-member');
});

test('an HTTP PATCH of the body reaches two live y-websocket editors', { timeout: 60_000 }, async () => {
  const { leader, a, b, studyId, postId } = await setup('Line one.\nLine two.\nLine three.');
  const ca = yws(a, postId);
  const cb = yws(b, postId);
  await waitSynced(ca, 'Ann');
  await waitSynced(cb, 'Ben');
  const changes = [];
  cb.ytext.observe((event) => changes.push(event.delta));

  const patched = 'Line one.\nLine 2, patched over HTTP.\nLine three.\nLine four.';
  const res = await call(a.session, 'PATCH', `/api/studies/${studyId}/posts/${postId}`, { body: patched });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  await waitTexts([ca, cb], patched, 'the patched body');
  // One diff that keeps the common prefix: the first line was never deleted and re-inserted.
  assert.ok(changes.length >= 1);
  assert.deepEqual(changes[0][0], { retain: 'Line one.\nLine '.length }, `a diff, not a rewrite: ${JSON.stringify(changes)}`);

  // The editors keep working on top of it.
  cb.ytext.insert(0, '# ');
  await waitTexts([ca, cb], `# ${patched}`, 'an edit after the patch');
  await serverHolds(leader, postId, `# ${patched}`);
  await waitHttpBody(leader, studyId, postId, `# ${patched}`);
});
