// Test 6: study chat rooms, against the real server. Two users (leader and an
// accepted member, set up over HTTP from node) chat in the study page's chat
// panel without reloads:
// - the leader opens a room through the form; messages show up live on both
//   sides, in seq order; typing and presence are shown;
// - the member's tab goes offline while the leader keeps talking (and the
//   member sends one message meanwhile: pending, then acknowledged once back
//   online) → after the reconnect nothing is missing and nothing is doubled;
// - the member's tab is closed and reopened → the same, from history; a
//   second room's unread badge shows and clears when the room is opened;
// - the leader removes the member → the member's chat panel closes live.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { launchBrowser, waitForConnState } from './browser.mjs';
import { startServer } from './server.mjs';
import { api, isoDay, waitUntil } from './api.mjs';

const LIVE_TIMEOUT_MS = 20_000;

let server;
let browser;

before(async () => {
  server = await startServer();
  client = api(server);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

let client;
const call = (...args) => client.call(...args);
const signup = (displayName) => client.signup(displayName, 'c');
const pageFor = (who) => client.pageFor(browser, who);

/** The messages shown in the open room: [{seq, body}] in DOM order. */
function shown(page) {
  return page.$$eval('[data-testid="chat-messages"] [data-testid="chat-message"]', (els) =>
    els.map((el) => ({
      seq: Number(el.getAttribute('data-seq')),
      body: el.querySelector('[data-testid="chat-body"]')?.textContent ?? '',
    })),
  );
}

/** Wait until the open room shows exactly `bodies`, with seqs 1..n in order. */
async function expectMessages(page, bodies, what) {
  let last = [];
  try {
    await waitUntil(
      what,
      async () => {
        last = await shown(page);
        return last.length === bodies.length && last.every((m, i) => m.body === bodies[i]);
      },
      LIVE_TIMEOUT_MS,
    );
  } catch (e) {
    assert.fail(`${e.message}\nshown: ${JSON.stringify(last)}\nexpected: ${JSON.stringify(bodies)}`);
  }
  assert.deepEqual(
    last.map((m) => m.seq),
    bodies.map((_, i) => i + 1),
    'seqs are 1..n in order, no gaps, no duplicates',
  );
}

async function send(page, text) {
  const box = page.getByTestId('chat-panel').getByLabel('Message', { exact: true });
  await box.fill(text);
  await page.getByTestId('chat-panel').getByRole('button', { name: 'Send', exact: true }).click();
}

test('two members chat live; reconnect and reopen lose nothing; removal closes the panel', { timeout: 240_000 }, async () => {
  const suffix = randomBytes(3).toString('hex');
  const leader = await signup(`Lead ${suffix}`);
  const member = await signup(`Mem ${suffix}`);

  const created = await call(leader.session, 'POST', '/api/studies', {
    title: `Chat ${suffix}`,
    description: 'We talk.',
    tags: ['chat'],
    capacity: 4,
    recruit_opens_on: isoDay(0),
    recruit_closes_on: isoDay(10),
    starts_on: isoDay(11),
    ends_on: isoDay(40),
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.study.id;
  const applied = await call(member.session, 'POST', `/api/studies/${id}/applications`, { message: 'hi' });
  assert.equal(applied.status, 201, JSON.stringify(applied.body));
  const decided = await call(leader.session, 'POST', `/api/studies/${id}/applications/${applied.body.application.id}/decision`, {
    accept: true,
  });
  assert.ok(decided.status < 300, JSON.stringify(decided.body));

  // ---- the leader opens a room through the panel's form ----
  const { context: ctxL, page: lp } = await pageFor(leader);
  await lp.goto(`/studies/${id}`);
  await waitForConnState(lp, 'connected');
  const lPanel = lp.getByTestId('chat-panel');
  await lPanel.getByText('No chat rooms yet. Open one below.').waitFor();
  await lPanel.getByLabel('Room name', { exact: true }).fill('Lobby');
  await lPanel.getByLabel('Category', { exact: true }).selectOption('qna');
  await lPanel.getByRole('button', { name: 'Create room', exact: true }).click();
  await lPanel.getByRole('tab', { name: /Lobby/ }).waitFor();
  await lp.locator('[data-testid="chat-room"][data-joined="true"]').waitFor();
  await lPanel.getByText('No messages yet. Say hello!').waitFor();
  // On a wide window the chat sits beside the task board; on a phone, below it.
  const board = lp.getByTestId('task-board');
  const [wideChat, wideBoard] = [await lPanel.boundingBox(), await board.boundingBox()];
  assert.ok(wideChat.x >= wideBoard.x + wideBoard.width, `chat beside the board: ${JSON.stringify([wideChat, wideBoard])}`);
  // The same panel moves (it is not rebuilt): a draft survives turning a tablet.
  const lBox = lPanel.getByLabel('Message', { exact: true });
  await lBox.fill('a draft');
  await lp.setViewportSize({ width: 390, height: 800 });
  await waitUntil('the chat under the board on a narrow window', async () => {
    const [c, b] = [await lPanel.boundingBox(), await board.boundingBox()];
    return c && b && c.y >= b.y + b.height && c.x < b.x + b.width;
  });
  assert.equal(await lBox.inputValue(), 'a draft');
  await lp.setViewportSize({ width: 1280, height: 720 });
  assert.equal(await lBox.inputValue(), 'a draft');
  await lBox.fill('');
  const rooms = await call(leader.session, 'GET', `/api/studies/${id}/chat_rooms`);
  const lobby = rooms.body.items.find((r) => r.name === 'Lobby');
  assert.equal(lobby.category, 'qna');

  // ---- the member joins; both see each other's messages live, in order ----
  let { context: ctxM, page: mp } = await pageFor(member);
  const memberSent = [];
  mp.on('websocket', (ws) =>
    ws.on('framesent', (f) => {
      try {
        memberSent.push(JSON.parse(String(f.payload)));
      } catch {
        // not JSON
      }
    }),
  );
  await mp.goto(`/studies/${id}`);
  const mPanel = () => mp.getByTestId('chat-panel');
  await mPanel().waitFor();
  await mp.locator('[data-testid="chat-room"][data-joined="true"]').waitFor({ timeout: LIVE_TIMEOUT_MS });
  await lp.getByTestId('presence').getByText(`Mem ${suffix}`).waitFor({ timeout: LIVE_TIMEOUT_MS });

  const bodies = [];
  await send(lp, 'Hello from the leader');
  bodies.push('Hello from the leader');
  await expectMessages(mp, bodies, 'the leader message on the member side');

  // Typing shows on the other side, and stops after the send.
  await mPanel().getByLabel('Message', { exact: true }).pressSequentially('Hi', { delay: 20 });
  await lp.getByTestId('typing').getByText(`Mem ${suffix} is typing…`).waitFor({ timeout: LIVE_TIMEOUT_MS });
  await mPanel().getByLabel('Message', { exact: true }).fill('Hi leader, member here');
  await mPanel().getByRole('button', { name: 'Send', exact: true }).click();
  bodies.push('Hi leader, member here');
  await expectMessages(lp, bodies, 'the member message on the leader side');
  await expectMessages(mp, bodies, 'the member own message');
  await waitUntil('the typing line to clear', async () => ((await lp.getByTestId('typing').textContent()) ?? '').trim() === '');

  for (let i = 1; i <= 3; i++) {
    await send(lp, `burst ${i}`);
    bodies.push(`burst ${i}`);
  }
  await expectMessages(mp, bodies, 'a burst, in order');
  await expectMessages(lp, bodies, 'the burst on the sender side');

  // ---- the member's tab goes offline; the leader keeps talking ----
  await ctxM.setOffline(true);
  await waitForConnState(mp, 'offline');
  for (let i = 1; i <= 4; i++) {
    await send(lp, `while away ${i}`);
    bodies.push(`while away ${i}`);
  }
  await expectMessages(lp, bodies, 'the leader messages while the member is away');
  // The member writes while offline: pending until the socket is back.
  await send(mp, 'sent while offline');
  const pending = mp.getByTestId('chat-pending').filter({ hasText: 'sent while offline' });
  await pending.getByText('Sending…').waitFor();
  const clientId = await pending.getAttribute('data-client-id');
  const seenBefore = bodies.length - 4;
  await ctxM.setOffline(false);
  await waitForConnState(mp, 'connected', 30_000);
  bodies.push('sent while offline');
  await expectMessages(mp, bodies, 'the missed messages replayed, then the pending one');
  await pending.waitFor({ state: 'detached' });
  // The re-join asked for what came after the last seq seen; the send went once, after it.
  const rejoin = memberSent.find((f) => f.type === 'chat.join' && f.room_id === lobby.id && f.last_seq === seenBefore);
  assert.ok(rejoin, `a chat.join with last_seq ${seenBefore}: ${JSON.stringify(memberSent.filter((f) => f.type === 'chat.join'))}`);
  assert.equal(memberSent.filter((f) => f.type === 'chat.send' && f.client_id === clientId).length, 1);
  await expectMessages(lp, bodies, 'the offline message on the leader side');

  // ---- the member's tab is closed and reopened ----
  await mp.close();
  await send(lp, 'while the tab was closed');
  bodies.push('while the tab was closed');
  await expectMessages(lp, bodies, 'the leader message while the tab is closed');
  // A second room with a message the member has not read.
  await lPanel.getByText('Open a new room', { exact: true }).click();
  await lPanel.getByLabel('Room name', { exact: true }).fill('Resources');
  await lPanel.getByLabel('Category', { exact: true }).selectOption('resources');
  await lPanel.getByRole('button', { name: 'Create room', exact: true }).click();
  // The new room is selected at once.
  await lPanel.getByRole('tab', { name: /Resources/, selected: true }).waitFor();
  const second = { body: { room: (await call(leader.session, 'GET', `/api/studies/${id}/chat_rooms`)).body.items.find((r) => r.name === 'Resources') } };
  assert.equal(second.body.room.category, 'resources');
  await lp.locator(`[data-testid="chat-room"][data-room-id="${second.body.room.id}"][data-joined="true"]`).waitFor();
  await send(lp, 'a link for you');
  await expectMessages(lp, ['a link for you'], 'the second room on the leader side');
  await lPanel.getByRole('tab', { name: /Lobby/ }).click();
  await expectMessages(lp, bodies, 'the first room again');

  mp = await ctxM.newPage();
  await mp.goto(`/studies/${id}`);
  await mp.locator('[data-testid="chat-room"][data-joined="true"]').waitFor({ timeout: LIVE_TIMEOUT_MS });
  await expectMessages(mp, bodies, 'the whole history after reopening');
  const resTab = mPanel().locator(`[data-testid="room-tab"][data-room-id="${second.body.room.id}"]`);
  await resTab.getByTestId('room-unread').filter({ hasText: '1' }).waitFor();
  // A live message in a room not shown bumps its badge.
  await lPanel.getByRole('tab', { name: /Resources/ }).click();
  await send(lp, 'and another');
  await resTab.getByTestId('room-unread').filter({ hasText: '2' }).waitFor({ timeout: LIVE_TIMEOUT_MS });
  await resTab.click();
  await expectMessages(mp, ['a link for you', 'and another'], 'the second room on the member side');
  await resTab.getByTestId('room-unread').waitFor({ state: 'detached' });
  // The read marker is stored: the server's unread count is 0 as well.
  await waitUntil('the read marker on the server', async () => {
    const list = await call(member.session, 'GET', `/api/studies/${id}/chat_rooms`);
    return list.body.items.find((r) => r.id === second.body.room.id)?.unread === 0;
  });
  await mPanel().getByRole('tab', { name: /Lobby/ }).click();
  await expectMessages(mp, bodies, 'the first room, still complete');

  // ---- direct messages (a second member tab), if the server has them ----
  const openapi = await call(member.session, 'GET', '/api/openapi.json');
  const hasDms = Boolean(openapi.body?.paths?.['/api/dms']);
  if (hasDms) {
    const dp = await ctxM.newPage();
    await dp.goto(`/studies/${id}`);
    await dp.locator(`[data-testid="members"] [data-testid="message-user"][data-user-id="${leader.user.id}"]`).click();
    await dp.waitForURL((u) => u.pathname === `/messages/${leader.user.id}`);
    await dp.getByTestId('conversation-name').getByText(`Lead ${suffix}`).waitFor();
    await dp.getByText('No messages yet.').waitFor();
    await dp.getByLabel(`Message to Lead ${suffix}`, { exact: true }).fill('Can I ask you something?');
    await dp.getByRole('button', { name: 'Send', exact: true }).click();
    const dmMine = dp.getByTestId('dm-message').filter({ hasText: 'Can I ask you something?' });
    await dmMine.waitFor();
    assert.equal(await dmMine.getByTestId('read-check').count(), 0);
    // The leader (on the study page) gets a toast and an unread badge.
    await lp.getByTestId('toast').filter({ hasText: `New message from Mem ${suffix}: Can I ask you something?` }).waitFor({ timeout: LIVE_TIMEOUT_MS });
    await lp.getByTestId('dm-unread').filter({ hasText: '1' }).waitFor({ timeout: LIVE_TIMEOUT_MS });
    await lp.getByRole('link', { name: /^Messages/ }).click();
    await lp.waitForURL((u) => u.pathname === '/messages');
    const conv = lp.locator(`[data-testid="conversation"][data-user-id="${member.user.id}"]`);
    await conv.getByTestId('conversation-unread').filter({ hasText: '1' }).waitFor();
    await conv.getByRole('link').click();
    await lp.waitForURL((u) => u.pathname === `/messages/${member.user.id}`);
    await lp.getByTestId('dm-message').filter({ hasText: 'Can I ask you something?' }).waitFor();
    // Read: the sender's check mark appears without a reload; the leader's badge goes away.
    await dmMine.getByTestId('read-check').waitFor({ timeout: LIVE_TIMEOUT_MS });
    await lp.getByTestId('dm-unread').waitFor({ state: 'detached' });
    // A reply arrives live in the member's open conversation (no toast there).
    await lp.getByLabel(`Message to Mem ${suffix}`, { exact: true }).fill('Sure, go ahead.');
    await lp.getByRole('button', { name: 'Send', exact: true }).click();
    await dp.getByTestId('dm-message').filter({ hasText: 'Sure, go ahead.' }).waitFor({ timeout: LIVE_TIMEOUT_MS });
    // The member's DM tab goes offline, misses a message, and gets it once back (dm.sync).
    await ctxM.setOffline(true);
    await dp.getByTestId('conn-state').and(dp.locator('[data-state="offline"]')).waitFor();
    await lp.getByLabel(`Message to Mem ${suffix}`, { exact: true }).fill('Sent while you were away.');
    await lp.getByRole('button', { name: 'Send', exact: true }).click();
    await lp.getByTestId('dm-message').filter({ hasText: 'Sent while you were away.' }).waitFor();
    await ctxM.setOffline(false);
    await dp.getByTestId('dm-message').filter({ hasText: 'Sent while you were away.' }).waitFor({ timeout: 30_000 });
    const dmSeqs = await dp.$$eval('[data-testid="dm-message"]', (els) => els.map((el) => Number(el.getAttribute('data-seq'))));
    assert.deepEqual(dmSeqs, [1, 2, 3]);
    // The leader's own messages get their check marks once the member has read them.
    await lp.getByTestId('dm-message').filter({ hasText: 'Sent while you were away.' }).getByTestId('read-check').waitFor({ timeout: LIVE_TIMEOUT_MS });
    await dp.close();
    await lp.goto(`/studies/${id}`);
    await lp.getByTestId('members').waitFor();
    // The member's study tab stayed connected through all this.
    await mp.locator('[data-testid="chat-room"][data-joined="true"]').waitFor({ timeout: 30_000 });
  } else {
    console.log('# the server has no /api/dms: the DM part is skipped');
  }

  // ---- the leader removes the member: the member's panel closes live ----
  const row = lp.getByTestId('member').filter({ hasText: `Mem ${suffix}` });
  await row.getByRole('button', { name: /^Remove/ }).click();
  await row.waitFor({ state: 'detached' });
  await mp.getByTestId('chat-panel').waitFor({ state: 'detached', timeout: LIVE_TIMEOUT_MS });
  await mp.getByRole('status').filter({ hasText: 'You were removed from this study.' }).first().waitFor({ timeout: LIVE_TIMEOUT_MS });
  await mp.locator('[data-testid="study-detail"][data-role="none"]').waitFor({ timeout: LIVE_TIMEOUT_MS });
  assert.equal(await mp.getByTestId('chat-panel').count(), 0);

  await ctxM.close();
  await ctxL.close();
});

test('scroll-back history, edit, delete, reactions and a closed room', { timeout: 240_000 }, async () => {
  const suffix = randomBytes(3).toString('hex');
  const leader = await signup(`Lead2 ${suffix}`);
  const member = await signup(`Mem2 ${suffix}`);
  const created = await call(leader.session, 'POST', '/api/studies', {
    title: `Chat2 ${suffix}`,
    description: 'More talk.',
    tags: [],
    capacity: 4,
    recruit_opens_on: isoDay(0),
    recruit_closes_on: isoDay(10),
    starts_on: isoDay(11),
    ends_on: isoDay(40),
  });
  const id = created.body.study.id;
  const applied = await call(member.session, 'POST', `/api/studies/${id}/applications`, { message: 'hi' });
  await call(leader.session, 'POST', `/api/studies/${id}/applications/${applied.body.application.id}/decision`, { accept: true });
  const room = await call(member.session, 'POST', `/api/studies/${id}/chat_rooms`, { name: 'Long', category: 'general' });
  assert.equal(room.status, 201, JSON.stringify(room.body));
  const rid = room.body.room.id;

  // 60 messages from the leader over a raw socket in the leader's page (paced under the rate limit).
  const { context: ctxL, page: lp } = await pageFor(leader);
  await lp.goto('/');
  const total = 60;
  const acked = await lp.evaluate(
    async ([rid, total]) => {
      const ws = new WebSocket(`ws://${location.host}/ws`);
      const acks = new Set();
      await new Promise((resolve, reject) => {
        ws.onmessage = (ev) => {
          const f = JSON.parse(ev.data);
          if (f.type === 'hello') ws.send(JSON.stringify({ type: 'chat.join', room_id: rid }));
          if (f.type === 'chat.joined') resolve(null);
          if (f.type === 'chat.ack') acks.add(f.client_id);
        };
        setTimeout(() => reject(new Error('no chat.joined')), 10_000);
      });
      for (let i = 1; i <= total; i++) {
        ws.send(JSON.stringify({ type: 'chat.send', room_id: rid, client_id: `bulk-${i}`, body: `line ${i}` }));
        await new Promise((r) => setTimeout(r, 230));
      }
      const deadline = Date.now() + 10_000;
      while (acks.size < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      ws.close();
      return acks.size;
    },
    [rid, total],
  );
  assert.equal(acked, total);

  const { context: ctxM, page: mp } = await pageFor(member);
  await mp.goto(`/studies/${id}`);
  await mp.locator('[data-testid="chat-room"][data-joined="true"]').waitFor({ timeout: LIVE_TIMEOUT_MS });
  // The newest page (50) first, then older ones when scrolled to the top.
  await waitUntil('the newest page', async () => (await shown(mp)).length === 50);
  assert.equal((await shown(mp))[0].seq, total - 49);
  await mp.getByTestId('chat-messages').evaluate((el) => {
    el.scrollTop = 0;
  });
  const all = Array.from({ length: total }, (_, i) => `line ${i + 1}`);
  await expectMessages(mp, all, 'the whole history after scrolling back');

  // Edit and delete own messages; react; everyone sees the updates.
  await lp.goto(`/studies/${id}`);
  await lp.locator('[data-testid="chat-room"][data-joined="true"]').waitFor({ timeout: LIVE_TIMEOUT_MS });
  await waitUntil('the newest page for the leader', async () => (await shown(lp)).length === 50);
  // The button does the same as scrolling up (for keyboards).
  await lp.getByRole('button', { name: 'Load older messages', exact: true }).click();
  await expectMessages(lp, all, 'the leader view after loading older messages');
  assert.equal(await lp.getByRole('button', { name: 'Load older messages', exact: true }).count(), 0);
  await send(mp, 'tpyo here');
  const mine = mp.locator(`[data-testid="chat-message"][data-seq="${total + 1}"]`);
  await mine.waitFor();
  await mine.getByRole('button', { name: 'Edit', exact: true }).click();
  await mine.getByLabel('Edit message', { exact: true }).fill('typo fixed');
  await mine.getByRole('button', { name: 'Save', exact: true }).click();
  const onLeader = lp.locator(`[data-testid="chat-message"][data-seq="${total + 1}"]`);
  await onLeader.getByText('typo fixed').waitFor({ timeout: LIVE_TIMEOUT_MS });
  await onLeader.getByText('(edited)').waitFor();
  // The member cannot edit or delete the leader's messages; the leader may delete any.
  const leaderMsg = mp.locator(`[data-testid="chat-message"][data-seq="${total}"]`);
  assert.equal(await leaderMsg.getByRole('button', { name: 'Edit', exact: true }).count(), 0);
  assert.equal(await leaderMsg.getByRole('button', { name: 'Delete', exact: true }).count(), 0);
  await onLeader.getByRole('button', { name: 'Delete', exact: true }).click();
  await mine.getByText('This message was deleted.').waitFor({ timeout: LIVE_TIMEOUT_MS });
  // Reactions.
  const target = lp.locator(`[data-testid="chat-message"][data-seq="${total}"]`);
  await target.getByLabel('Add a reaction').click();
  await target.getByRole('button', { name: 'React with 🎉', exact: true }).click();
  await leaderMsg.locator('[data-testid="reaction"][data-emoji="🎉"]').filter({ hasText: '1' }).waitFor({ timeout: LIVE_TIMEOUT_MS });
  await leaderMsg.locator('[data-testid="reaction"][data-emoji="🎉"]').click();
  await target.locator('[data-testid="reaction"][data-emoji="🎉"]').filter({ hasText: '2' }).waitFor({ timeout: LIVE_TIMEOUT_MS });

  // The leader closes the room: read-only with a notice on both sides.
  await lp.getByRole('button', { name: 'Close room', exact: true }).click();
  await lp.getByRole('button', { name: 'Yes, close it', exact: true }).click();
  const notice = 'This room was closed by the leader. You can still read it, but not send.';
  await mp.getByRole('status').filter({ hasText: notice }).waitFor({ timeout: LIVE_TIMEOUT_MS });
  await lp.getByRole('status').filter({ hasText: notice }).waitFor({ timeout: LIVE_TIMEOUT_MS });
  assert.equal(await mp.getByTestId('chat-panel').getByLabel('Message', { exact: true }).count(), 0);
  assert.equal((await shown(mp)).length, total + 1);
  // With no open room left, a new one can be opened (and the limit is 3).
  for (const name of ['A', 'B', 'C']) {
    const r = await call(leader.session, 'POST', `/api/studies/${id}/chat_rooms`, { name, category: 'off_topic' });
    assert.equal(r.status, 201);
  }
  const panel = mp.getByTestId('chat-panel');
  await panel.getByText('Open a new room', { exact: true }).click();
  await panel.getByLabel('Room name', { exact: true }).fill('D');
  await panel.getByRole('button', { name: 'Create room', exact: true }).click();
  await panel.getByRole('alert').filter({ hasText: 'A study can have at most 3 open rooms. Close one first.' }).waitFor();

  await ctxM.close();
  await ctxL.close();
});
