// Group video on the study page, against the real server and its SFU. A leader and two
// members (A, B) are set up over HTTP from node; each browser context gets its session
// cookie. Chromium runs with a fake camera and microphone (browser.mjs, launchMediaBrowser)
// and media goes over UDP to the server on 127.0.0.1. Each page opts in to the test hook
// (`window.__studyonTestHooks`), which exposes the inbound RTP stats of its one
// RTCPeerConnection per publisher and source (src/video.ts). Without reloads:
// - the leader joins: A, on the study page and not in the call, sees a call going on with
//   one person in it; A joins too: each decodes frames of the other's camera
//   (framesDecoded > 0) and hears the other's microphone (packetsReceived grows); both
//   links are judged good, and no connection warning shows;
// - A raises a hand: the leader's tile of A shows it; raised again, the leader lowers it
//   from the raised hands list and A's toggle follows; A turns the camera off (no video on
//   the leader's tile) and on again (frames resume); A shares a screen (the fake capture
//   source): the leader gets a screen tile and decodes it, until A stops; A shares again
//   and the leader stops it from the tile: A's share ends with a notice;
// - B opens the study page mid-call and sees two in it, then joins late and decodes the leader's camera within a few seconds (the SFU asks the
//   leader for a key frame); B asks for a simulcast layer of A's camera, and the leader
//   enlarging A's tile asks for A's `high` layer;
// - A picks another microphone from the panel: A sends from it and B still hears A;
// - the leader mutes A: A's microphone toggle is disabled with the reason; once B's page
//   shows A muted, B's inbound audio from A stops growing (sampled 1.5 s apart) while B's
//   audio from the leader still grows; the leader allows unmuting: A's toggle comes back
//   but stays off until A turns the microphone on, after which B hears A again;
// - "mute everyone" mutes A and B but not the leader;
// - the leader removes B from the call: B's panel says so and the leader's tile of B goes;
//   B's page shows the call going on without B;
// - A turns the camera off and A's socket drops: A's panel says "disconnected", the others
//   lose A's tile; when the connection is back A rejoins by itself with the camera still
//   off, sees the leader, and the leader sees A's camera once A turns it on;
// - the server restarts: the leader and A are back in the call by themselves and decode
//   each other again;
// - A drops again and the call empties meanwhile: back online, A asks who is in the call
//   and says it ended, without joining a new call alone;
// - A unticks the camera before joining (remembered across a reload) and joins with the
//   microphone only: the camera is never asked for, and the leader hears A;
// - the leader ends the call: A's panel and the leader's say it ended, and B's page no
//   longer shows a call.
// A second test runs a server whose rooms take two: a member who refuses the camera and
// microphone joins receive-only (toggles off, the reason shown) and still decodes the
// leader; a third joiner gets `video_full`, shown with its code.
// Every server frame of the video family (and every `error`) each page receives is
// recorded, so a failure shows what the server sent.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { launchMediaBrowser } from './browser.mjs';
import { startServer } from './server.mjs';
import { api, waitUntil } from './api.mjs';

/** Bound for joining and for media to start flowing. */
const MEDIA_TIMEOUT_MS = 25_000;
/** A late joiner must decode the leader's camera this soon after joining (a key frame was asked for). */
const LATE_KEYFRAME_MS = 8_000;
/** The two samples of a stream's counters that must (not) differ. */
const SAMPLE_GAP_MS = 1_500;

let server;
let browser;
let client;

before(async () => {
  server = await startServer();
  client = api(server);
  browser = await launchMediaBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Video frames, errors, `hello`s and `call_changed` study events a page received, newest
 * last (kept short for failure messages);
 * the `video.*` frames it sent go to `sent`.
 */
function recordFrames(page, name, sent) {
  const frames = [];
  page.on('websocket', (ws) => {
    ws.on('framesent', ({ payload }) => {
      if (typeof payload !== 'string' || !payload.includes('"video.')) return;
      try {
        sent.push(JSON.parse(payload));
      } catch {
        // not JSON
      }
    });
    ws.on('framereceived', ({ payload }) => {
      if (typeof payload !== 'string') return;
      let f;
      try {
        f = JSON.parse(payload);
      } catch {
        return;
      }
      if (typeof f?.type !== 'string' || !(f.type.startsWith('video.') || f.type === 'error' || f.type === 'hello' || (f.type === 'study.event' && f.event?.kind === 'call_changed'))) return;
      // SDP bodies are long: their size says enough.
      const short = { ...f };
      if (typeof short.sdp === 'string') short.sdp = `<${short.sdp.length} chars>`;
      frames.push(JSON.stringify(short));
      if (frames.length > 60) frames.shift();
    });
  });
  return () => `\n--- ${name}: last video frames ---\n${frames.join('\n')}`;
}

/**
 * A signed-in page on the study, with the video test hook enabled and devices allowed
 * (`deny`: getUserMedia fails as if the user refused, NotAllowedError).
 */
async function openStudy(who, studyId, name, { srv = server, cl = client, deny = false } = {}) {
  const { context, page } = await cl.pageFor(browser, who);
  await context.grantPermissions(['camera', 'microphone'], { origin: srv.url });
  await context.addInitScript(() => {
    /** @type {any} */ (window).__studyonTestHooks = true;
  });
  if (deny) {
    await context.addInitScript(() => {
      navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
    });
  }
  const sent = [];
  const frames = recordFrames(page, name, sent);
  await page.goto(`/studies/${studyId}`);
  await page.getByTestId('video-panel').waitFor();
  return { page, frames, sent };
}

async function panelState(page) {
  return page.evaluate(() => {
    const panel = document.querySelector('[data-testid="video-panel"]');
    const err = document.querySelector('[data-testid="video-error"]');
    const left = document.querySelector('[data-testid="video-left"]');
    return {
      phase: panel?.getAttribute('data-phase') ?? null,
      media: panel?.getAttribute('data-media-state') ?? null,
      error: err ? `${err.getAttribute('data-code')}: ${err.textContent}` : null,
      left: left?.getAttribute('data-reason') ?? null,
    };
  });
}

/** Clicks "Join video" and waits until the panel is joined (an error shown there fails at once). */
async function join(p) {
  await p.page.locator('[data-testid="conn-state"][data-state="connected"]').first().waitFor();
  await p.page.getByTestId('video-join').click();
  let seen;
  await waitUntil(
    () => `the video panel to join (last seen ${JSON.stringify(seen)})${p.frames()}`,
    async () => {
      seen = await panelState(p.page);
      if (seen.error) assert.fail(`joining failed: ${seen.error}${p.frames()}`);
      return seen.phase === 'joined';
    },
    MEDIA_TIMEOUT_MS,
  );
  return Date.now();
}

/** The page's inbound RTP streams: [{user_id, source, kind, packetsReceived, framesDecoded, ...}]. */
async function inbound(page) {
  return page.evaluate(async () => {
    const hook = /** @type {any} */ (window).__studyonVideo;
    return hook ? await hook.inbound() : [];
  });
}

async function stream(page, userId, source) {
  return (await inbound(page)).find((s) => s.user_id === userId && s.source === source) ?? null;
}

let lastPanel = null;

/** Waits until `p` decodes frames of `userId`'s camera; returns the time it took. */
async function waitForFrames(p, userId, what, timeout = MEDIA_TIMEOUT_MS) {
  const start = Date.now();
  let all = [];
  await waitUntil(
    () => `${what}: framesDecoded > 0 (inbound: ${JSON.stringify(all)}; panel: ${JSON.stringify(lastPanel)})${p.frames()}`,
    async () => {
      all = await inbound(p.page);
      lastPanel = await panelState(p.page);
      const s = all.find((x) => x.user_id === userId && x.source === 'camera');
      return s && s.framesDecoded > 0;
    },
    timeout,
  );
  return Date.now() - start;
}

/** Waits until `p` decodes more frames of `userId`'s `source` than `above` (a fresh stream counts from 0). */
async function waitForMoreFrames(p, userId, source, above, what, timeout = MEDIA_TIMEOUT_MS) {
  let s = null;
  await waitUntil(
    () => `${what}: framesDecoded of ${source} above ${JSON.stringify(above)} (saw ${JSON.stringify(s)})${p.frames()}`,
    async () => {
      s = await stream(p.page, userId, source);
      if (!s) return false;
      if (!above) return s.framesDecoded > 0;
      return s.mid !== above.mid ? s.framesDecoded > 0 : s.framesDecoded > above.framesDecoded + 5;
    },
    timeout,
  );
}

/** Packets of `userId`'s microphone at `page` (null: no such stream). */
async function micPackets(page, userId) {
  const s = await stream(page, userId, 'mic');
  return s ? s.packetsReceived : null;
}

/** Waits until the audio of `userId` at `p` grows over one sample gap. */
async function waitForAudioGrowing(p, userId, what, timeout = MEDIA_TIMEOUT_MS) {
  let a = null;
  let b = null;
  await waitUntil(
    () => `${what}: audio packets growing (saw ${a} then ${b})${p.frames()}`,
    async () => {
      a = await micPackets(p.page, userId);
      await sleep(500);
      b = await micPackets(p.page, userId);
      return a !== null && b !== null && b > a;
    },
    timeout,
  );
}

async function assertNoVideoError(p, who) {
  const s = await panelState(p.page);
  assert.equal(s.error, null, `${who}'s video panel shows no error${p.frames()}`);
}

const tile = (page, userId) => page.locator(`[data-testid="video-tile"][data-user-id="${userId}"]`);

test('leader and members meet on video: media both ways, reactions, late joiner, leader mute, locks, remove, end', { timeout: 300_000 }, async () => {
  const suffix = randomBytes(3).toString('hex');
  const leader = await client.signup(`Lead ${suffix}`, 'v');
  const a = await client.signup(`Ann ${suffix}`, 'v');
  const b = await client.signup(`Ben ${suffix}`, 'v');
  const studyId = await client.studyWith(leader, [a, b], `Video ${suffix}`);
  const L = leader.user.id;
  const A = a.user.id;
  const B = b.user.id;

  // ---- the leader and A join; each decodes the other's camera and hears the other ----
  const pl = await openStudy(leader, studyId, 'leader');
  const pa = await openStudy(a, studyId, 'A');
  await join(pl);
  // A, on the study page and not in the call, sees it going on (a `call_changed` event).
  await pa.page.locator('[data-testid="video-in-progress"][data-count="1"]').waitFor();
  await join(pa);
  assert.equal(await pa.page.getByTestId('video-in-progress').count(), 0, 'no call notice inside the call');
  assert.equal(await pa.page.getByTestId('video-leader-controls').count(), 0, 'a member has no leader controls');
  await pl.page.getByTestId('video-leader-controls').waitFor();
  await tile(pl.page, A).waitFor({ timeout: MEDIA_TIMEOUT_MS });
  await tile(pa.page, L).waitFor({ timeout: MEDIA_TIMEOUT_MS });
  await tile(pa.page, A).and(pa.page.locator('[data-self="true"]')).waitFor();
  await waitForFrames(pl, A, 'the leader sees A');
  await waitForFrames(pa, L, 'A sees the leader');
  await waitForAudioGrowing(pl, A, 'the leader hears A');
  await waitForAudioGrowing(pa, L, 'A hears the leader');
  // The tiles show the camera as a video element and the state icons.
  await tile(pl.page, A).getByTestId('video-media').waitFor();
  await tile(pl.page, A).locator('[data-testid="video-mic-state"][data-on="true"]').waitFor();
  await pl.page.locator(`[data-testid="video-audio"][data-user-id="${A}"]`).waitFor({ state: 'attached' });

  // The server judges each link every few seconds: on loopback both are good, and no
  // warning is shown.
  await tile(pl.page, A).and(pl.page.locator('[data-quality="good"]')).waitFor({ timeout: MEDIA_TIMEOUT_MS });
  await tile(pa.page, A).and(pa.page.locator('[data-self="true"][data-quality="good"]')).waitFor({ timeout: MEDIA_TIMEOUT_MS });
  assert.equal(await pl.page.getByTestId('video-quality').count(), 0, 'no connection warning on loopback');

  // ---- A raises a hand; the leader sees it ----
  await pa.page.getByTestId('video-hand-toggle').click();
  await tile(pl.page, A).getByTestId('video-hand-marker').waitFor();
  await pa.page.getByTestId('video-hand-toggle').click();
  await waitUntil('the hand lowered at the leader', async () => (await tile(pl.page, A).getByTestId('video-hand-marker').count()) === 0);
  // Up again: the leader sees it in the raised hands list and lowers it from there.
  await pa.page.getByTestId('video-hand-toggle').click();
  const handAtLeader = pl.page.locator(`[data-testid="video-hand-entry"][data-user-id="${A}"]`);
  await handAtLeader.waitFor();
  assert.equal(await pa.page.getByTestId('video-lower-hand').count(), 0, 'a member cannot lower hands');
  await handAtLeader.getByTestId('video-lower-hand').click();
  await pa.page.locator('[data-testid="video-hand-toggle"][data-on="false"]').waitFor();
  await waitUntil('the hands list gone at the leader', async () => (await pl.page.getByTestId('video-hands').count()) === 0);

  // ---- A reacts: A's tile shows it at the leader and at A, and it goes by itself ----
  await pa.page.getByTestId('video-react-clap').click();
  await tile(pl.page, A).locator('[data-testid="video-reaction"][data-reaction="clap"]').waitFor();
  await tile(pa.page, A).locator('[data-testid="video-reaction"][data-reaction="clap"]').waitFor();
  await waitUntil('the reaction goes by itself', async () => (await tile(pl.page, A).getByTestId('video-reaction').count()) === 0, 10_000);

  // ---- A turns the camera off (the leader's tile shows no video) and on again (frames resume) ----
  const camA = pa.page.getByTestId('video-camera-toggle');
  await camA.click();
  await pa.page.locator('[data-testid="video-camera-toggle"][data-on="false"]').waitFor();
  await tile(pl.page, A).and(pl.page.locator('[data-camera="false"]')).waitFor();
  assert.equal(await tile(pl.page, A).getByTestId('video-media').count(), 0, 'no video element for a camera that is off');
  const beforeOn = await stream(pl.page, A, 'camera');
  await camA.click();
  await pa.page.locator('[data-testid="video-camera-toggle"][data-on="true"]').waitFor();
  await tile(pl.page, A).and(pl.page.locator('[data-camera="true"]')).waitFor();
  await waitForMoreFrames(pl, A, 'camera', beforeOn, 'the leader sees A’s camera again');

  // ---- A shares a screen (the fake capture source): the leader gets a screen tile and decodes it ----
  await pa.page.getByTestId('video-screen-toggle').click();
  await pa.page.locator('[data-testid="video-screen-toggle"][data-on="true"]').waitFor();
  await pa.page.locator('[data-testid="video-screen-tile"][data-self="true"]').waitFor();
  await pl.page.locator(`[data-testid="video-screen-tile"][data-user-id="${A}"]`).waitFor({ timeout: MEDIA_TIMEOUT_MS });
  await waitForMoreFrames(pl, A, 'screen', null, 'the leader sees A’s screen');
  await pa.page.getByTestId('video-screen-toggle').click();
  await pa.page.locator('[data-testid="video-screen-toggle"][data-on="false"]').waitFor();
  await waitUntil('A’s screen tile gone at the leader', async () => (await pl.page.locator('[data-testid="video-screen-tile"]').count()) === 0);
  // A shares again, and the leader stops it from the screen tile: A's share ends with a
  // notice, and the tile goes at the leader.
  await pa.page.getByTestId('video-screen-toggle').click();
  const screenAtLeader = pl.page.locator(`[data-testid="video-screen-tile"][data-user-id="${A}"]`);
  await screenAtLeader.waitFor({ timeout: MEDIA_TIMEOUT_MS });
  assert.equal(await pa.page.getByTestId('video-stop-screen').count(), 0, 'a member cannot stop shares');
  await screenAtLeader.getByTestId('video-stop-screen').click();
  await pa.page.locator('[data-testid="video-screen-toggle"][data-on="false"]').waitFor();
  await pa.page.locator('[data-testid="video-stopped"][data-source="screen"]').waitFor();
  await waitUntil('A’s screen tile gone at the leader after the stop', async () => (await screenAtLeader.count()) === 0);

  // ---- B joins late and decodes the leader's camera within a few seconds ----
  const pb = await openStudy(b, studyId, 'B');
  // Opened after the call started: the page asks who is in it (`video.status`).
  await pb.page.locator('[data-testid="video-in-progress"][data-count="2"]').waitFor();
  const notice = await pb.page.getByTestId('video-in-progress').textContent();
  assert.ok(notice.includes(`Lead ${suffix}`) && notice.includes(`Ann ${suffix}`), `the notice names who is in the call: ${notice}`);
  await join(pb);
  const took = await waitForFrames(pb, L, `B (late) sees the leader within ${LATE_KEYFRAME_MS} ms`, LATE_KEYFRAME_MS);
  console.log(`late joiner decoded the leader's camera ${took} ms after joining`);
  await waitForFrames(pb, A, 'B sees A');
  await waitForAudioGrowing(pb, A, 'B hears A');

  // ---- A picks another microphone: the call goes on from it, without renegotiating ----
  const micPick = pa.page.getByTestId('video-mic-device');
  await micPick.waitFor();
  const mics = await micPick.locator('option').evaluateAll((os) => os.map((o) => /** @type {HTMLOptionElement} */ (o).value).filter(Boolean));
  const usedMic = await micPick.inputValue();
  const otherMic = mics.find((id) => id !== usedMic);
  assert.ok(otherMic, `A has another microphone to pick (${JSON.stringify(mics)}, using ${usedMic})`);
  await micPick.selectOption(otherMic);
  await waitUntil(
    'A sends from the picked microphone',
    async () => (await pa.page.evaluate(() => /** @type {any} */ (window).__studyonVideo.micDevice())) === otherMic,
  );
  assert.equal(await micPick.inputValue(), otherMic, 'the picker shows the microphone in use');
  await waitForAudioGrowing(pb, A, 'B hears A from the other microphone');
  await waitForAudioGrowing(pb, L, 'B hears the leader');
  await tile(pl.page, B).waitFor();
  await tile(pa.page, B).waitFor();

  // ---- layers: B asked for small tiles in the low layer; the leader enlarges A and asks for A's high layer ----
  const layersOf = (p, userId) => p.sent.filter((f) => f.type === 'video.layer' && f.user_id === userId).map((f) => f.layer);
  await waitUntil('B asks for a layer of A’s camera', async () => layersOf(pb, A).length > 0);
  // The server switches B at a key frame of that layer and renumbers the packets: B's decoder goes on.
  await sleep(1_000);
  await waitForMoreFrames(pb, A, 'camera', await stream(pb.page, A, 'camera'), 'B decodes A’s camera in the layer it asked for');
  await tile(pl.page, A).getByTestId('video-spotlight').click();
  await tile(pl.page, A).locator('[data-testid="video-spotlight"][aria-pressed="true"]').waitFor();
  await waitUntil(() => `the leader asks for A’s high layer (sent ${JSON.stringify(layersOf(pl, A))})`, async () => layersOf(pl, A).at(-1) === 'high');
  await waitForMoreFrames(pl, A, 'camera', await stream(pl.page, A, 'camera'), 'the leader still decodes the enlarged A');
  await tile(pl.page, A).getByTestId('video-spotlight').click();
  await assertNoVideoError(pl, 'the leader');
  await assertNoVideoError(pb, 'B');

  // ---- the leader mutes A ----
  await tile(pl.page, A).getByTestId('video-mute').click();
  // A: the toggle is off, disabled, and says why.
  const micA = pa.page.getByTestId('video-mic-toggle');
  await pa.page.locator('[data-testid="video-mic-toggle"][data-muted-by-leader="true"][data-on="false"]').waitFor();
  assert.ok(await micA.isDisabled(), 'A cannot turn the microphone back on');
  await pa.page.getByTestId('video-muted-notice').waitFor();
  assert.equal(await micA.getAttribute('aria-describedby'), await pa.page.getByTestId('video-muted-notice').getAttribute('id'));
  // B sees A muted; then A's audio at B stops while the leader's goes on.
  await tile(pb.page, A).and(pb.page.locator('[data-muted="true"]')).waitFor();
  await tile(pb.page, A).getByTestId('video-muted-marker').waitFor();
  await sleep(1_000); // packets already on their way when the mute landed
  const a1 = await micPackets(pb.page, A);
  const l1 = await micPackets(pb.page, L);
  await sleep(SAMPLE_GAP_MS);
  const a2 = await micPackets(pb.page, A);
  const l2 = await micPackets(pb.page, L);
  if (a1 === null || a2 === null) console.log(`B has no audio stream of A any more (${a1} → ${a2})`);
  else assert.equal(a2, a1, `B receives no audio from the muted A (${a1} → ${a2} packets in ${SAMPLE_GAP_MS} ms)${pb.frames()}`);
  assert.ok(l1 !== null && l2 !== null && l2 > l1, `B still hears the leader (${l1} → ${l2} packets)${pb.frames()}`);
  await assertNoVideoError(pa, 'A');

  // ---- the leader lets A unmute: the toggle comes back, still off; A turns it on, B hears A ----
  await tile(pl.page, A).getByTestId('video-allow-unmute').click();
  await pa.page.locator('[data-testid="video-mic-toggle"][data-muted-by-leader="false"]').waitFor();
  assert.ok(!(await micA.isDisabled()), 'A may turn the microphone on again');
  assert.equal(await micA.getAttribute('data-on'), 'false', 'lifting the mute does not unmute A');
  await pa.page.getByTestId('video-unmute-allowed').waitFor();
  await tile(pb.page, A).and(pb.page.locator('[data-muted="false"]')).waitFor();
  await micA.click();
  await pa.page.locator('[data-testid="video-mic-toggle"][data-on="true"]').waitFor();
  await tile(pb.page, A).locator('[data-testid="video-mic-state"][data-on="true"]').waitFor();
  await waitForAudioGrowing(pb, A, 'B hears A again after the unmute');
  await assertNoVideoError(pa, 'A');

  // ---- "mute everyone" mutes both members, not the leader ----
  await pl.page.getByTestId('video-mute-all').click();
  for (const p of [pa, pb]) {
    await p.page.locator('[data-testid="video-mic-toggle"][data-muted-by-leader="true"][data-on="false"]').waitFor();
  }
  await tile(pl.page, A).and(pl.page.locator('[data-muted="true"]')).waitFor();
  await tile(pl.page, B).and(pl.page.locator('[data-muted="true"]')).waitFor();
  assert.equal(await pl.page.locator('[data-testid="video-mic-toggle"][data-muted-by-leader="false"][data-on="true"]').count(), 1, 'the leader is not muted');
  await waitForAudioGrowing(pb, L, 'B still hears the leader after "mute everyone"');

  // ---- the leader locks cameras: the members' cameras go off and cannot be turned on,
  // the leader's stays; the leader allows A, whose camera reaches the leader again ----
  const camToggleA = pa.page.getByTestId('video-camera-toggle');
  const camToggleB = pb.page.getByTestId('video-camera-toggle');
  await pl.page.getByTestId('video-lock-camera').check();
  await pa.page.locator('[data-testid="video-camera-toggle"][data-on="false"]').waitFor();
  await pa.page.getByTestId('video-locked-notice').waitFor();
  assert.ok(await camToggleA.isDisabled(), 'A cannot turn a locked camera on');
  assert.equal(await camToggleA.getAttribute('aria-describedby'), await pa.page.getByTestId('video-locked-notice').getAttribute('id'));
  await tile(pl.page, A).and(pl.page.locator('[data-camera="false"]')).waitFor();
  await waitUntil('B cannot turn a locked camera on', async () => camToggleB.isDisabled());
  assert.equal(await pl.page.getByTestId('video-camera-toggle').getAttribute('data-on'), 'true', 'the leader’s camera stays on');
  assert.ok(!(await pl.page.getByTestId('video-camera-toggle').isDisabled()), 'the leader is never locked');
  await tile(pl.page, A).getByTestId('video-allow-camera').click();
  await waitUntil('A may turn the camera on once allowed', async () => !(await camToggleA.isDisabled()));
  assert.equal(await pa.page.getByTestId('video-locked-notice').count(), 0, 'no lock notice once allowed');
  const beforeAllowed = await stream(pl.page, A, 'camera');
  await camToggleA.click();
  await pa.page.locator('[data-testid="video-camera-toggle"][data-on="true"]').waitFor();
  await waitForMoreFrames(pl, A, 'camera', beforeAllowed, 'the leader sees A’s camera once allowed');
  assert.ok(await camToggleB.isDisabled(), 'B is still held');
  await tile(pl.page, B).getByTestId('video-allow-camera').waitFor();
  // A locked microphone: the muted members are told why.
  await pl.page.getByTestId('video-lock-mic').check();
  await waitUntil('A is told microphones are locked', async () =>
    ((await pa.page.getByTestId('video-muted-notice').textContent()) ?? '').includes('locked microphones'),
  );
  await pl.page.getByTestId('video-lock-mic').uncheck();
  // B asks with a raised hand; the leader allows B's camera from the list of raised hands,
  // which answers the hand.
  await pb.page.getByTestId('video-hand-toggle').click();
  const handB = pl.page.locator(`[data-testid="video-hand-entry"][data-user-id="${B}"]`);
  await handB.getByTestId('video-allow-camera').click();
  await waitUntil('B may turn the camera on once allowed', async () => !(await camToggleB.isDisabled()));
  await waitUntil('B’s hand is answered', async () => (await handB.count()) === 0);
  await pb.page.locator('[data-testid="video-hand-toggle"][data-on="false"]').waitFor();
  // Unlocked, nothing is left to allow.
  await pl.page.getByTestId('video-lock-camera').uncheck();
  await waitUntil('nothing left to allow', async () => (await pl.page.getByTestId('video-allow-camera').count()) === 0);
  assert.ok(!(await camToggleB.isDisabled()), 'B may turn the camera on');
  // The leader lets A unmute again: mutes are saved and would hold across the restart
  // below, as the server told the leader they would.
  await tile(pl.page, A).getByTestId('video-allow-unmute').click();
  await pa.page.locator('[data-testid="video-mic-toggle"][data-muted-by-leader="false"]').waitFor();
  await assertNoVideoError(pa, 'A');
  await assertNoVideoError(pb, 'B');

  // ---- the leader removes B from the call ----
  await tile(pl.page, B).getByTestId('video-remove').click();
  await pb.page.locator('[data-testid="video-left"][data-reason="removed"]').waitFor();
  assert.equal((await panelState(pb.page)).phase, 'left');
  await pb.page.getByTestId('video-join').waitFor(); // they may join again
  await waitUntil('B’s tile gone at the leader', async () => (await tile(pl.page, B).count()) === 0);
  await waitUntil('B’s tile gone at A', async () => (await tile(pa.page, B).count()) === 0);
  await pb.page.locator('[data-testid="video-in-progress"][data-count="2"]').waitFor();
  await assertNoVideoError(pl, 'the leader');

  // ---- A turns the camera off, then A's socket drops: the panel says so, and once the
  // connection is back A is in the call again by itself, camera still off ----
  await pa.page.getByTestId('video-camera-toggle').click();
  await pa.page.locator('[data-testid="video-camera-toggle"][data-on="false"]').waitFor();
  await pa.page.context().setOffline(true);
  await pa.page.getByTestId('video-disconnected').waitFor();
  assert.equal((await panelState(pa.page)).phase, 'disconnected');
  assert.ok(await pa.page.evaluate(() => /** @type {any} */ (window).__studyonVideo.pc === null), 'A closed its peer connection');
  await waitUntil('A’s tile gone at the leader after A’s socket closed', async () => (await tile(pl.page, A).count()) === 0);
  await pa.page.context().setOffline(false);
  let seenA;
  await waitUntil(
    () => `A to rejoin by itself (panel ${JSON.stringify(seenA)})${pa.frames()}`,
    async () => {
      seenA = await panelState(pa.page);
      return seenA.phase === 'joined';
    },
    MEDIA_TIMEOUT_MS,
  );
  await tile(pl.page, A).waitFor();
  await pa.page.locator('[data-testid="video-camera-toggle"][data-on="false"]').waitFor();
  await waitForFrames(pa, L, 'A sees the leader again after rejoining');
  // The camera comes back only when A turns it on.
  await pa.page.getByTestId('video-camera-toggle').click();
  await pa.page.locator('[data-testid="video-camera-toggle"][data-on="true"]').waitFor();
  await waitForFrames(pl, A, 'the leader sees A’s camera again after A turned it on');

  // ---- the server restarts (SIGTERM: every socket closes with 1001): both come back into
  // the call by themselves and see each other again ----
  await server.restart();
  for (const [p, who] of [[pl, 'the leader'], [pa, 'A']]) {
    let seen;
    await waitUntil(
      () => `${who} to be back in the call after the restart (panel ${JSON.stringify(seen)})${p.frames()}`,
      async () => {
        seen = await panelState(p.page);
        return seen.phase === 'joined';
      },
      MEDIA_TIMEOUT_MS,
    );
  }
  await tile(pl.page, A).waitFor();
  // Coming back is not starting a call: no one is notified of one.
  const rejoinA = pa.sent.filter((f) => f.type === 'video.join').at(-1);
  assert.equal(rejoinA?.rejoin, true, `A's join after the restart says rejoin: ${JSON.stringify(rejoinA)}`);
  await waitForFrames(pl, A, 'the leader sees A after the restart');
  await waitForFrames(pa, L, 'A sees the leader after the restart');

  // ---- A drops again and the call ends meanwhile: back online, A does not stay in a new
  // call alone ----
  await pa.page.context().setOffline(true);
  await pa.page.getByTestId('video-disconnected').waitFor();
  await waitUntil('A’s tile gone at the leader after A dropped again', async () => (await tile(pl.page, A).count()) === 0);
  await pl.page.getByTestId('video-leave').click();
  await pl.page.getByTestId('video-join').waitFor();
  const joinsBefore = pa.sent.filter((f) => f.type === 'video.join').length;
  await pa.page.context().setOffline(false);
  // Back online, A asks who is in the call: nobody, and it changed since A dropped, so A
  // says the call ended instead of starting a new one.
  await pa.page.locator('[data-testid="video-left"][data-reason="empty"]').waitFor({ timeout: MEDIA_TIMEOUT_MS });
  assert.ok(await pa.page.evaluate(() => /** @type {any} */ (window).__studyonVideo.pc === null), 'A holds no peer connection');
  assert.equal(pa.sent.filter((f) => f.type === 'video.join').length, joinsBefore, `A did not join an ended call again${pa.frames()}`);
  await join(pl);
  // A joins with the camera unticked (remembered for the next time): in the call with the
  // microphone only, the camera never opened.
  await pa.page.getByTestId('video-join-camera').uncheck();
  await pa.page.context().addInitScript(() => {
    const md = navigator.mediaDevices;
    const original = md.getUserMedia.bind(md);
    /** @type {any} */ (window).__gumAsked = [];
    md.getUserMedia = (c) => {
      /** @type {any} */ (window).__gumAsked.push(c);
      return original(c);
    };
  });
  await pa.page.reload();
  await pa.page.getByTestId('video-panel').waitFor();
  assert.equal(await pa.page.getByTestId('video-join-camera').isChecked(), false, 'the choice is remembered');
  assert.equal(await pa.page.getByTestId('video-join-mic').isChecked(), true);
  await join(pa);
  await pa.page.locator('[data-testid="video-camera-toggle"][data-on="false"]').waitFor();
  await pa.page.locator('[data-testid="video-mic-toggle"][data-on="true"]').waitFor();
  const asked = await pa.page.evaluate(() => /** @type {any} */ (window).__gumAsked);
  assert.ok(asked.length > 0 && asked.every((c) => !c.video), `the camera was never asked for: ${JSON.stringify(asked)}`);
  await tile(pl.page, A).and(pl.page.locator('[data-camera="false"]')).waitFor();
  await waitForAudioGrowing(pl, A, 'the leader hears A, who joined without a camera');

  // ---- the leader ends the call for everyone ----
  await pl.page.getByTestId('video-end').click();
  await pl.page.getByTestId('video-end-confirm').click();
  await pa.page.locator('[data-testid="video-left"][data-reason="ended"]').waitFor();
  await pl.page.locator('[data-testid="video-left"][data-reason="ended"]').waitFor();
  assert.ok(await pa.page.evaluate(() => /** @type {any} */ (window).__studyonVideo.pc === null), 'A closed its peer connection');
  // B, out of the call since the leader removed them (and across the server's restart),
  // saw it going on and sees it over.
  await waitUntil('B sees the call over', async () => (await pb.page.getByTestId('video-in-progress').count()) === 0);
});

test('a refused camera joins receive-only; a full room says video_full', { timeout: 120_000 }, async () => {
  const srv = await startServer({ env: { STUDYON_VIDEO_MAX_PARTICIPANTS: '2' } });
  try {
    const cl = api(srv);
    const suffix = randomBytes(3).toString('hex');
    const leader = await cl.signup(`Lead ${suffix}`, 'v');
    const a = await cl.signup(`Ann ${suffix}`, 'v');
    const b = await cl.signup(`Ben ${suffix}`, 'v');
    const studyId = await cl.studyWith(leader, [a, b], `Video full ${suffix}`);
    const L = leader.user.id;
    const A = a.user.id;
    const opts = { srv, cl };

    const pl = await openStudy(leader, studyId, 'leader', opts);
    await join(pl);
    const pa = await openStudy(a, studyId, 'A', { ...opts, deny: true });
    await join(pa);
    await pa.page.locator('[data-testid="video-device-problem"][data-reason="denied"]').waitFor();
    await pa.page.locator('[data-testid="video-mic-toggle"][data-on="false"]').waitFor();
    await pa.page.locator('[data-testid="video-camera-toggle"][data-on="false"]').waitFor();
    await waitForFrames(pa, L, 'A (receive-only) sees the leader');
    await waitForAudioGrowing(pa, L, 'A (receive-only) hears the leader');
    await tile(pl.page, A).and(pl.page.locator('[data-camera="false"][data-mic="false"]')).waitFor();
    // Trying the microphone again asks again, is refused again, and stays off.
    await pa.page.getByTestId('video-mic-toggle').click();
    await pa.page.locator('[data-testid="video-mic-toggle"][data-on="false"]:not([disabled])').waitFor();
    await pa.page.locator('[data-testid="video-device-problem"][data-reason="denied"]').waitFor();
    await assertNoVideoError(pa, 'A');

    const pb = await openStudy(b, studyId, 'B', opts);
    await pb.page.locator('[data-testid="conn-state"][data-state="connected"]').first().waitFor();
    await pb.page.getByTestId('video-join').click();
    await pb.page.locator('[data-testid="video-error"][data-code="video_full"]').waitFor();
    assert.match(await pb.page.getByTestId('video-error').textContent(), /full/i);
    assert.equal((await panelState(pb.page)).phase, 'idle');
    await pb.page.getByTestId('video-join').waitFor(); // may try again later
    assert.equal(await tile(pl.page, b.user.id).count(), 0, 'the refused joiner never showed up');
    await pl.page.getByTestId('video-count').filter({ hasText: '2 of 2' }).waitFor();
  } finally {
    await srv.close();
  }
});

test('a call whose media path breaks is joined again by itself', { timeout: 120_000 }, async () => {
  const suffix = randomBytes(3).toString('hex');
  const leader = await client.signup(`Lead ${suffix}`, 'v');
  const a = await client.signup(`Ann ${suffix}`, 'v');
  const studyId = await client.studyWith(leader, [a], `Video resume ${suffix}`);
  const L = leader.user.id;
  const A = a.user.id;
  const pl = await openStudy(leader, studyId, 'leader');
  await join(pl);
  const pa = await openStudy(a, studyId, 'A');
  await join(pa);
  await waitForFrames(pl, A, 'the leader sees A');
  await waitForFrames(pa, L, 'A sees the leader');
  const before = await stream(pl.page, A, 'camera');
  const joinsBefore = pa.sent.filter((f) => f.type === 'video.join').length;

  // A's media path breaks while its socket stays up: its peer connection is gone, so the
  // server hears no more connectivity checks and drops A's seat as connection_lost
  // (after 15 s).
  await pa.page.evaluate(() => /** @type {any} */ (window).__studyonVideo.pc.close());
  await waitUntil(
    () => `A joins again by itself (sent: ${pa.sent.map((f) => f.type).join(', ')})${pa.frames()}`,
    async () => pa.sent.filter((f) => f.type === 'video.join').length > joinsBefore,
    40_000,
  );
  const again = pa.sent.filter((f) => f.type === 'video.join').at(-1);
  assert.equal(again.rejoin, true, 'an empty call would not be news to the study');

  // Media flows both ways on A's new peer connection; A never saw the "left" notice.
  await waitForFrames(pa, L, 'A sees the leader again');
  await waitForMoreFrames(pl, A, 'camera', before, 'the leader sees A again');
  const s = await panelState(pa.page);
  assert.equal(s.phase, 'joined', `A is back in the call${pa.frames()}`);
  assert.equal(s.left, null, `A was not shown a "left" notice${pa.frames()}`);
  await assertNoVideoError(pa, 'A');
  await tile(pl.page, A).waitFor();
});
