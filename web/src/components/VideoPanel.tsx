// The study page's video call (members and the leader). Join, the tiles (mine
// first, then everyone else in the server's order; shared screens above them),
// my microphone/camera/screen/hand toggles, the microphone and camera pickers and
// leave; for the leader, mute / allow unmute / remove per participant, mute everyone
// and end the call.
// State and the protocol are in `../video.ts`.
import { useEffect, useState } from 'preact/hooks';
import { useApp } from '../context';
import { errorMessage, type MessageKey, hasKey, useI18n } from '../i18n';
import {
  type DeviceChoice,
  installTestHook,
  loadJoinWith,
  REACTION_EMOJI,
  saveJoinWith,
  VIDEO_REACTIONS,
  VIDEO_SOURCES,
  type VideoParticipant,
  VideoRoom,
} from '../video';
import { ErrorAlert, Notice } from './Alert';
import { Button } from './Button';
import { AllowButtons, RemoteAudio, ScreenTile, VideoTile, videoSmallButton } from './VideoTile';

const sectionClass = 'flex flex-col gap-3 rounded-lg border border-slate-200 bg-white p-4';

const toggleBase =
  'inline-flex items-center gap-1.5 rounded-md border px-3 py-2 text-sm font-semibold shadow-sm ' +
  'focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-blue-600 ' +
  'disabled:cursor-not-allowed disabled:opacity-60';
const toggleOn = 'border-blue-700 bg-blue-700 text-white hover:bg-blue-800';
const toggleOff = 'border-slate-300 bg-white text-slate-800 hover:bg-slate-100';

function Toggle({
  testId,
  on,
  disabled,
  icon,
  label,
  describedBy,
  extra,
  onClick,
}: {
  testId: string;
  on: boolean;
  disabled?: boolean;
  icon: string;
  label: string;
  describedBy?: string;
  extra?: Record<string, string>;
  onClick: () => void;
}) {
  return (
    <button
      type="button"
      data-testid={testId}
      data-on={on ? 'true' : 'false'}
      aria-pressed={on}
      aria-describedby={describedBy}
      disabled={disabled}
      class={`${toggleBase} ${on ? toggleOn : toggleOff}`}
      onClick={onClick}
      {...extra}
    >
      <span aria-hidden="true">{icon}</span>
      {label}
    </button>
  );
}

/** A picker of the microphone or camera to send from (shown when there is a choice). */
function DevicePicker({
  testId,
  label,
  choices,
  value,
  disabled,
  onPick,
}: {
  testId: string;
  label: string;
  choices: DeviceChoice[];
  value: string | null;
  disabled: boolean;
  onPick: (id: string) => void;
}) {
  if (choices.length < 2) return null;
  return (
    <label class="flex items-center gap-1.5 text-sm text-slate-700">
      {label}
      <select
        data-testid={testId}
        value={value ?? ''}
        disabled={disabled}
        onChange={(e) => onPick(e.currentTarget.value)}
        class="max-w-56 rounded-md border border-slate-300 bg-white px-2 py-1.5 text-sm"
      >
        {value === null && <option value="" />}
        {choices.map((d) => (
          <option key={d.id} value={d.id}>
            {d.label}
          </option>
        ))}
      </select>
    </label>
  );
}

function leftText(reason: string, t: (k: MessageKey, p?: Record<string, string | number>) => string): string {
  const key = `video.left.${reason}`;
  return hasKey(key) ? t(key) : t('video.left.other', { reason });
}

/** Who is in the call, for the notice: up to three names (members the page knows), then "+N". */
function callNames(ids: number[], names: Map<number, string>): string {
  const known = ids.map((id) => names.get(id)).filter((n): n is string => !!n);
  const shown = known.slice(0, 3).join(', ');
  const rest = ids.length - Math.min(known.length, 3);
  return rest > 0 ? (shown ? `${shown} +${rest}` : `+${rest}`) : shown;
}

export function VideoPanel({ studyId, isLeader, names = new Map() }: { studyId: number; isLeader: boolean; names?: Map<number, string> }) {
  const { t } = useI18n();
  const app = useApp();
  const [, setTick] = useState(0);
  const [room, setRoom] = useState<VideoRoom | null>(null);
  const [audioBlocked, setAudioBlocked] = useState(false);
  const [confirmEnd, setConfirmEnd] = useState(false);
  const [joinWith, setJoinWith] = useState(loadJoinWith);
  const choose = (next: { mic: boolean; camera: boolean }) => {
    setJoinWith(next);
    saveJoinWith(next);
  };

  const live = app.live;
  useEffect(() => {
    if (!live) return;
    const r = new VideoRoom(live, studyId, () => setTick((v) => v + 1));
    r.start();
    setRoom(r);
    const offHook = installTestHook(r);
    return () => {
      offHook();
      r.stop();
      setRoom(null);
    };
  }, [live, studyId]);

  if (!room) return null;
  const phase = room.phase;
  const connected = app.connState === 'connected';
  const joined = phase === 'joined';

  return (
    <section aria-labelledby="video-h" class={sectionClass} data-testid="video-panel" data-phase={phase} data-media-state={room.mediaState}>
      <div class="flex flex-wrap items-center justify-between gap-2">
        <h2 id="video-h" class="text-lg font-semibold">
          {t('video.title')}
        </h2>
        {joined && room.maxParticipants > 0 && (
          <span class="text-sm text-slate-700" data-testid="video-count">
            {t('video.count', { count: room.participants.length, max: room.maxParticipants })}
          </span>
        )}
      </div>

      {room.lastError && (
        <div class="flex items-start gap-2" data-testid="video-error" data-code={room.lastError.code}>
          <div class="flex-1">
            <ErrorAlert>
              {errorMessage(room.lastError)} <code class="text-xs">({room.lastError.code})</code>
            </ErrorAlert>
          </div>
          <button type="button" class={videoSmallButton} onClick={() => room.clearError()} aria-label={t('toast.dismiss')}>
            ×
          </button>
        </div>
      )}
      {phase === 'left' && room.leftReason && (
        <div data-testid="video-left" data-reason={room.leftReason}>
          <Notice>{leftText(room.leftReason, t)}</Notice>
        </div>
      )}
      {phase === 'disconnected' && (
        <div data-testid="video-disconnected">
          <Notice>{t('video.disconnected')}</Notice>
        </div>
      )}
      {room.deviceProblem && (joined || phase === 'joining') && (
        <div data-testid="video-device-problem" data-reason={room.deviceProblem}>
          <Notice>{t(`video.device.${room.deviceProblem}`)}</Notice>
        </div>
      )}

      {(phase === 'idle' || phase === 'left' || phase === 'disconnected') && room.call.userIds.length > 0 && (
        <p role="status" data-testid="video-in-progress" data-count={room.call.userIds.length} class="font-semibold text-emerald-800">
          <span aria-hidden="true">● </span>
          {t('video.inProgress', { count: room.call.userIds.length, names: callNames(room.call.userIds, names) })}
        </p>
      )}
      {(phase === 'idle' || phase === 'left' || phase === 'disconnected') && (
        <div class="flex flex-wrap items-center gap-3">
          <fieldset class="flex flex-wrap items-center gap-3 text-sm text-slate-800">
            <legend class="sr-only">{t('video.joinWith')}</legend>
            <label class="inline-flex items-center gap-1.5">
              <input
                type="checkbox"
                data-testid="video-join-mic"
                checked={joinWith.mic}
                onChange={(e) => choose({ ...joinWith, mic: e.currentTarget.checked })}
              />
              {t('video.joinMic')}
            </label>
            <label class="inline-flex items-center gap-1.5">
              <input
                type="checkbox"
                data-testid="video-join-camera"
                checked={joinWith.camera}
                onChange={(e) => choose({ ...joinWith, camera: e.currentTarget.checked })}
              />
              {t('video.joinCamera')}
            </label>
          </fieldset>
          <Button testId="video-join" disabled={!connected} onClick={() => void room.join(joinWith)}>
            {phase === 'idle' ? t('video.join') : t('video.rejoin')}
          </Button>
          <p class="text-sm text-slate-600">{connected ? t('video.hint') : t('chat.notConnected')}</p>
        </div>
      )}
      {phase === 'joining' && (
        <div class="flex flex-wrap items-center gap-3">
          <p role="status" data-testid="video-joining" class="text-slate-700">
            {t('video.joining')}
          </p>
          <Button testId="video-leave" variant="secondary" onClick={() => room.leave()}>
            {t('members.cancel')}
          </Button>
        </div>
      )}
      {joined && (room.mediaState === 'failed' || room.mediaState === 'disconnected') && (
        <div data-testid="video-media-problem" data-state={room.mediaState}>
          <Notice>{t('video.mediaProblem')}</Notice>
        </div>
      )}
      {joined && (
        <JoinedView room={room} isLeader={isLeader} meName={app.user?.display_name ?? ''} onAudioBlocked={() => setAudioBlocked(true)} />
      )}
      {joined && audioBlocked && (
        <div class="flex flex-wrap items-center gap-2">
          <p class="text-sm text-slate-700">{t('video.audioBlocked')}</p>
          <button
            type="button"
            class={videoSmallButton}
            data-testid="video-audio-unblock"
            onClick={() => {
              for (const el of document.querySelectorAll<HTMLAudioElement>('[data-testid="video-audio"]')) void el.play().catch(() => {});
              setAudioBlocked(false);
            }}
          >
            {t('video.audioEnable')}
          </button>
        </div>
      )}

      {joined && (
        <div class="flex flex-col gap-2">
          {room.mutedByLeader && (
            <div id={`video-muted-${studyId}`} data-testid="video-muted-notice">
              <Notice>{t(room.locks.includes('mic') ? 'video.lockedMic' : 'video.mutedByLeader')}</Notice>
            </div>
          )}
          {(room.heldBack('camera') || room.heldBack('screen')) && (
            <div id={`video-locked-${studyId}`} data-testid="video-locked-notice">
              <Notice>
                {t(
                  room.heldBack('camera') && room.heldBack('screen')
                    ? 'video.lockedBoth'
                    : room.heldBack('camera')
                      ? 'video.lockedCamera'
                      : 'video.lockedScreen',
                )}
              </Notice>
            </div>
          )}
          {room.stoppedByLeader && !room.heldBack(room.stoppedByLeader) && (
            <div data-testid="video-stopped" data-source={room.stoppedByLeader}>
              <Notice>{t(room.stoppedByLeader === 'camera' ? 'video.stoppedCamera' : 'video.stoppedScreen')}</Notice>
            </div>
          )}
          {room.unmuteAllowed && !room.mutedByLeader && (
            <div data-testid="video-unmute-allowed">
              <Notice>{t('video.unmuteAllowed')}</Notice>
            </div>
          )}
          <div class="flex flex-wrap items-center gap-2" role="group" aria-label={t('video.controls')} data-testid="video-controls">
            <Toggle
              testId="video-mic-toggle"
              on={room.mic}
              disabled={room.mutedByLeader || room.switching}
              icon={room.mic ? '🎤' : '🔇'}
              label={t('video.mic')}
              describedBy={room.mutedByLeader ? `video-muted-${studyId}` : undefined}
              extra={{ 'data-muted-by-leader': room.mutedByLeader ? 'true' : 'false' }}
              onClick={() => void room.toggleMic()}
            />
            <Toggle
              testId="video-camera-toggle"
              on={room.camera}
              disabled={room.switching || (!room.camera && room.heldBack('camera'))}
              describedBy={room.heldBack('camera') ? `video-locked-${studyId}` : undefined}
              icon={room.camera ? '📷' : '🚫'}
              label={t('video.camera')}
              onClick={() => void room.toggleCamera()}
            />
            {VideoRoom.canShareScreen() && (
              <Toggle
                testId="video-screen-toggle"
                on={room.screen}
                disabled={room.switching || (!room.screen && room.heldBack('screen'))}
                describedBy={room.heldBack('screen') ? `video-locked-${studyId}` : undefined}
                icon="🖥️"
                label={t('video.screen')}
                onClick={() => void room.toggleScreen()}
              />
            )}
            <Toggle testId="video-hand-toggle" on={room.hand} icon="✋" label={t('video.hand')} onClick={() => room.toggleHand()} />
            <div class="flex flex-wrap items-center gap-1" role="group" aria-label={t('video.reactions')} data-testid="video-reactions">
              {VIDEO_REACTIONS.map((r) => (
                <button
                  key={r}
                  type="button"
                  class={videoSmallButton}
                  data-testid={`video-react-${r}`}
                  aria-label={t(`video.reaction.${r}`)}
                  title={t(`video.reaction.${r}`)}
                  onClick={() => room.react(r)}
                >
                  <span aria-hidden="true">{REACTION_EMOJI[r]}</span>
                </button>
              ))}
            </div>
            <Button testId="video-leave" variant="secondary" onClick={() => room.leave()}>
              {t('video.leave')}
            </Button>
          </div>
          <div class="flex flex-wrap items-center gap-3" data-testid="video-devices">
            <DevicePicker
              testId="video-mic-device"
              label={t('video.micDevice')}
              choices={room.devices.audio}
              value={room.picked.audio}
              disabled={room.switching}
              onPick={(id) => void room.chooseDevice('audio', id)}
            />
            <DevicePicker
              testId="video-camera-device"
              label={t('video.cameraDevice')}
              choices={room.devices.video}
              value={room.picked.video}
              disabled={room.switching}
              onPick={(id) => void room.chooseDevice('video', id)}
            />
          </div>
          {isLeader && (
            <div class="flex flex-wrap items-center gap-2" role="group" aria-label={t('video.leaderControls')} data-testid="video-leader-controls">
              <Button testId="video-mute-all" variant="secondary" onClick={() => room.muteAll()}>
                {t('video.muteAll')}
              </Button>
              <fieldset class="flex flex-wrap items-center gap-3 text-sm text-slate-800" data-testid="video-locks">
                <legend class="sr-only">{t('video.locks')}</legend>
                {VIDEO_SOURCES.map((source) => (
                  <label key={source} class="inline-flex items-center gap-1.5">
                    <input
                      type="checkbox"
                      data-testid={`video-lock-${source}`}
                      checked={room.locks.includes(source)}
                      onChange={(e) => room.setLock(source, e.currentTarget.checked)}
                    />
                    {t(`video.lock.${source}`)}
                  </label>
                ))}
              </fieldset>
              {room.raisedHands().length > 0 && (
                <Button testId="video-lower-hands" variant="secondary" onClick={() => room.lowerHands()}>
                  {t('video.lowerHands')}
                </Button>
              )}
              {!confirmEnd ? (
                <Button testId="video-end" variant="secondary" onClick={() => setConfirmEnd(true)}>
                  {t('video.end')}
                </Button>
              ) : (
                <>
                  <span id={`video-end-q-${studyId}`} class="text-sm font-medium text-red-800">
                    {t('video.endConfirm')}
                  </span>
                  <Button
                    testId="video-end-confirm"
                    variant="danger"
                    onClick={() => {
                      setConfirmEnd(false);
                      room.end();
                    }}
                  >
                    {t('video.endYes')}
                  </Button>
                  <Button testId="video-end-cancel" variant="secondary" onClick={() => setConfirmEnd(false)}>
                    {t('members.cancel')}
                  </Button>
                </>
              )}
            </div>
          )}
        </div>
      )}
    </section>
  );
}

function JoinedView({
  room,
  isLeader,
  meName,
  onAudioBlocked,
}: {
  room: VideoRoom;
  isLeader: boolean;
  meName: string;
  onAudioBlocked: () => void;
}) {
  const { t } = useI18n();
  const you = room.you;
  const listed = room.participants.find((p) => p.user_id === you);
  // My own tile follows what this tab sends at once (the server's list follows it).
  const me: VideoParticipant = {
    user_id: you ?? 0,
    display_name: listed?.display_name ?? meName,
    leader: listed?.leader ?? isLeader,
    mic: room.mic,
    camera: room.camera,
    screen: room.screen,
    hand: room.hand,
    hand_at: listed?.hand_at ?? null,
    muted: room.mutedByLeader,
    locked: listed?.locked ?? [],
    connected: room.mediaState === 'connected',
    quality: listed?.quality ?? null,
  };
  // A spotlighted tile comes first, over the whole width.
  const others = room.participants.filter((p) => p.user_id !== you);
  const focused = others.find((p) => p.user_id === room.spotlight) ?? null;
  const speaker = room.speaker;
  const tileOf = (p: VideoParticipant) => (
    <VideoTile
      key={`tile-${p.user_id}`}
      participant={p}
      stream={room.remoteMedia(p.user_id).camera}
      self={false}
      speaking={speaker === p.user_id}
      focused={room.spotlight === p.user_id}
      onSpotlight={() => room.setSpotlight(p.user_id)}
      reaction={room.reactionOf(p.user_id)}
      moderation={
        isLeader && !p.leader
          ? {
              mute: () => room.mute(p.user_id),
              allowUnmute: () => room.allowUnmute(p.user_id),
              remove: () => room.remove(p.user_id),
              stopCamera: () => room.stopSource(p.user_id, 'camera'),
              allow: (source) => room.allow(p.user_id, source),
            }
          : null
      }
    />
  );
  const hands = room.raisedHands();
  return (
    <>
      {hands.length > 0 && (
        <section aria-labelledby="video-hands-h" class="rounded-md border border-amber-300 bg-amber-50 px-3 py-2">
          <h3 id="video-hands-h" class="text-sm font-semibold text-amber-950">
            {t('video.hands', { count: hands.length })}
          </h3>
          <ol class="mt-1 flex flex-col gap-1" data-testid="video-hands">
            {hands.map((p) => (
              <li key={`hand-${p.user_id}`} data-testid="video-hand-entry" data-user-id={p.user_id} class="flex flex-wrap items-center gap-2 text-sm text-slate-900">
                <span aria-hidden="true">✋</span>
                {p.user_id === you ? t('video.you', { name: p.display_name }) : p.display_name}
                {isLeader && p.user_id !== you && p.muted && (
                  <button type="button" class={videoSmallButton} data-testid="video-allow-unmute" onClick={() => room.allowUnmute(p.user_id)}>
                    {t('video.allowUnmute')}
                    <span class="sr-only"> {p.display_name}</span>
                  </button>
                )}
                {isLeader && p.user_id !== you && <AllowButtons participant={p} onAllow={(source) => room.allow(p.user_id, source)} />}
                {isLeader && p.user_id !== you && (
                  <button type="button" class={videoSmallButton} data-testid="video-lower-hand" onClick={() => room.lowerHand(p.user_id)}>
                    {t('video.lowerHand')}
                    <span class="sr-only"> {p.display_name}</span>
                  </button>
                )}
              </li>
            ))}
          </ol>
        </section>
      )}
      <ul class="grid grid-cols-2 gap-2 sm:grid-cols-3" data-testid="video-tiles">
        {room.localScreen && <ScreenTile key="screen-me" participant={me} stream={room.localScreen} self />}
        {others.map((p) => {
          const s = room.remoteMedia(p.user_id).screen;
          return s && p.screen ? (
            <ScreenTile
              key={`screen-${p.user_id}`}
              participant={p}
              stream={s}
              self={false}
              onStop={isLeader && !p.leader ? () => room.stopSource(p.user_id, 'screen') : null}
            />
          ) : null;
        })}
        {focused && tileOf(focused)}
        <VideoTile
          key={`tile-${me.user_id}`}
          participant={me}
          stream={room.localCamera}
          self
          speaking={speaker === me.user_id}
          focused={false}
          onSpotlight={null}
          moderation={null}
          reaction={room.reactionOf(me.user_id)}
        />
        {others.filter((p) => p !== focused).map(tileOf)}
      </ul>
      {others.map((p) => {
        const mic = room.remoteMedia(p.user_id).mic;
        return mic ? <RemoteAudio key={`audio-${p.user_id}`} userId={p.user_id} stream={mic} onBlocked={onAudioBlocked} /> : null;
      })}
    </>
  );
}
