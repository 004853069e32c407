// One participant of the study's video call: their camera (or an initial when it
// is off), name, microphone/camera state, raised hand, the leader's mute, the
// active-speaker ring, and for the leader the moderation buttons. Screen shares
// get a tile of their own (`ScreenTile`); remote microphones play through one
// `<audio>` each (`RemoteAudio`). Media elements get their stream through a ref
// (`srcObject` has no attribute), and every style is a class: the page's CSP
// allows no inline styles.
import { useEffect, useRef } from 'preact/hooks';
import { useI18n } from '../i18n';
import { REACTION_EMOJI, type VideoParticipant, type VideoReaction } from '../video';

export const videoSmallButton =
  'rounded border border-slate-300 bg-white px-2 py-0.5 text-xs font-semibold text-slate-800 hover:bg-slate-100 focus-visible:outline-2 focus-visible:outline-blue-600 disabled:cursor-not-allowed disabled:opacity-60';

/** Plays `stream` in a muted `<video>` (sound goes through `RemoteAudio`). */
export function VideoView({ stream, mirror, contain, label }: { stream: MediaStream; mirror?: boolean; contain?: boolean; label: string }) {
  const ref = useRef<HTMLVideoElement>(null);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    el.muted = true;
    if (el.srcObject !== stream) el.srcObject = stream;
    el.play().catch(() => {
      // Muted video may always play; a failure here is a detached element.
    });
  }, [stream]);
  return (
    <video
      ref={ref}
      autoplay
      playsInline
      muted
      aria-label={label}
      data-testid="video-media"
      class={`h-full w-full bg-slate-900 ${contain ? 'object-contain' : 'object-cover'} ${mirror ? '-scale-x-100' : ''}`}
    />
  );
}

/** A remote participant's microphone. `onBlocked` is told when the browser refuses to play sound yet. */
export function RemoteAudio({ userId, stream, onBlocked }: { userId: number; stream: MediaStream; onBlocked: () => void }) {
  const ref = useRef<HTMLAudioElement>(null);
  const blocked = useRef(onBlocked);
  blocked.current = onBlocked;
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    if (el.srcObject !== stream) el.srcObject = stream;
    el.play().catch((e: unknown) => {
      if (e && typeof e === 'object' && 'name' in e && (e as { name: string }).name === 'NotAllowedError') blocked.current();
    });
  }, [stream]);
  return <audio ref={ref} autoplay data-testid="video-audio" data-user-id={userId} class="hidden" />;
}

function initials(name: string): string {
  const chars = [...name.trim()];
  return chars.length > 0 ? chars[0].toUpperCase() : '?';
}

export interface TileModeration {
  mute: () => void;
  allowUnmute: () => void;
  remove: () => void;
  stopCamera: () => void;
  /** Lets them past the leader's lock on a camera or screen. */
  allow: (source: 'camera' | 'screen') => void;
}

/** The leader's "Allow" buttons for the camera and screen a lock keeps someone from. */
export function AllowButtons({ participant: p, onAllow }: { participant: VideoParticipant; onAllow: (source: 'camera' | 'screen') => void }) {
  const { t } = useI18n();
  return (
    <>
      {p.locked
        .filter((source): source is 'camera' | 'screen' => source !== 'mic')
        .map((source) => (
          <button key={source} type="button" class={videoSmallButton} data-testid={`video-allow-${source}`} onClick={() => onAllow(source)}>
            {t(source === 'camera' ? 'video.allowCamera' : 'video.allowScreen')}
            <span class="sr-only"> {p.display_name}</span>
          </button>
        ))}
    </>
  );
}

export function VideoTile({
  participant: p,
  stream,
  self,
  speaking,
  focused,
  onSpotlight,
  moderation,
  reaction = null,
}: {
  participant: VideoParticipant;
  stream: MediaStream | null;
  self: boolean;
  speaking: boolean;
  focused: boolean;
  onSpotlight: (() => void) | null;
  /** The leader's buttons for this participant (null for everyone else, and on the leader's own tile). */
  moderation: TileModeration | null;
  /** Their reaction on show. */
  reaction?: VideoReaction | null;
}) {
  const { t } = useI18n();
  const name = self ? t('video.you', { name: p.display_name }) : p.display_name;
  const showVideo = stream !== null && p.camera;
  return (
    <li
      data-testid="video-tile"
      data-user-id={p.user_id}
      data-self={self ? 'true' : 'false'}
      data-speaking={speaking ? 'true' : 'false'}
      data-muted={p.muted ? 'true' : 'false'}
      data-mic={p.mic ? 'true' : 'false'}
      data-camera={p.camera ? 'true' : 'false'}
      data-hand={p.hand ? 'true' : 'false'}
      data-connected={p.connected ? 'true' : 'false'}
      data-quality={p.quality ?? ''}
      class={`flex min-w-0 flex-col gap-1 ${focused ? 'col-span-full' : ''}`}
    >
      <figure
        class={`relative aspect-video overflow-hidden rounded-md bg-slate-800 ${speaking ? 'ring-4 ring-emerald-400' : 'ring-1 ring-slate-300'}`}
      >
        {showVideo ? (
          <VideoView stream={stream} mirror={self} label={t('video.cameraOf', { name: p.display_name })} />
        ) : (
          <div class="flex h-full w-full items-center justify-center" aria-hidden="true">
            <span class="flex h-14 w-14 items-center justify-center rounded-full bg-slate-600 text-2xl font-bold text-white">
              {initials(p.display_name)}
            </span>
          </div>
        )}
        {p.hand && (
          <span
            data-testid="video-hand-marker"
            class="absolute right-1 top-1 rounded bg-amber-300 px-1.5 py-0.5 text-xs font-semibold text-amber-950"
          >
            <span aria-hidden="true">✋ </span>
            {t('video.handMarker')}
          </span>
        )}
        {reaction && (
          <span
            data-testid="video-reaction"
            data-reaction={reaction}
            role="img"
            aria-label={t('video.reactedWith', { reaction: t(`video.reaction.${reaction}`) })}
            class="absolute bottom-8 left-2 text-4xl drop-shadow"
          >
            {REACTION_EMOJI[reaction]}
          </span>
        )}
        {!p.connected && !self && (
          <span class="absolute left-1 top-1 rounded bg-slate-900/70 px-1.5 py-0.5 text-xs text-white" data-testid="video-connecting">
            {t('video.connecting')}
          </span>
        )}
        <figcaption class="absolute inset-x-0 bottom-0 flex flex-wrap items-center gap-1.5 bg-slate-900/70 px-2 py-1 text-xs text-white">
          <span class="truncate font-semibold" data-testid="video-name">
            {name}
          </span>
          {p.leader && <span class="rounded bg-blue-200 px-1 text-blue-950">{t('members.leader')}</span>}
          <span data-testid="video-mic-state" data-on={p.mic ? 'true' : 'false'}>
            <span aria-hidden="true">{p.mic ? '🎤' : '🔇'}</span>
            <span class="sr-only">{p.mic ? t('video.micOnState') : t('video.micOffState')}</span>
          </span>
          <span data-testid="video-camera-state" data-on={p.camera ? 'true' : 'false'}>
            <span aria-hidden="true">{p.camera ? '📷' : '🚫'}</span>
            <span class="sr-only">{p.camera ? t('video.cameraOnState') : t('video.cameraOffState')}</span>
          </span>
          {(p.quality === 'fair' || p.quality === 'poor') && (
            <span
              data-testid="video-quality"
              data-quality={p.quality}
              class={`rounded px-1 font-semibold ${p.quality === 'poor' ? 'bg-red-200 text-red-950' : 'bg-amber-200 text-amber-950'}`}
            >
              {self ? t(`video.quality.${p.quality}.self`) : t(`video.quality.${p.quality}`)}
            </span>
          )}
          {p.muted && (
            <span data-testid="video-muted-marker" class="rounded bg-red-200 px-1 font-semibold text-red-950">
              {t('video.mutedMarker')}
            </span>
          )}
          {speaking && <span class="sr-only">{t('video.speaking')}</span>}
        </figcaption>
      </figure>
      {(onSpotlight || moderation) && (
        <div class="flex flex-wrap gap-1">
          {onSpotlight && (
            <button type="button" class={videoSmallButton} data-testid="video-spotlight" aria-pressed={focused} onClick={onSpotlight}>
              {focused ? t('video.unspotlight') : t('video.spotlight')}
              <span class="sr-only"> {p.display_name}</span>
            </button>
          )}
          {moderation &&
            (p.muted ? (
              <button type="button" class={videoSmallButton} data-testid="video-allow-unmute" onClick={moderation.allowUnmute}>
                {t('video.allowUnmute')}
                <span class="sr-only"> {p.display_name}</span>
              </button>
            ) : (
              <button type="button" class={videoSmallButton} data-testid="video-mute" onClick={moderation.mute}>
                {t('video.mute')}
                <span class="sr-only"> {p.display_name}</span>
              </button>
            ))}
          {moderation && p.camera && (
            <button type="button" class={videoSmallButton} data-testid="video-stop-camera" onClick={moderation.stopCamera}>
              {t('video.stopCamera')}
              <span class="sr-only"> {p.display_name}</span>
            </button>
          )}
          {moderation && <AllowButtons participant={p} onAllow={moderation.allow} />}
          {moderation && (
            <button type="button" class={videoSmallButton} data-testid="video-remove" onClick={moderation.remove}>
              {t('video.remove')}
              <span class="sr-only"> {p.display_name}</span>
            </button>
          )}
        </div>
      )}
    </li>
  );
}

/** Someone's shared screen (mine too, as a preview); `onStop` for the leader's stop. */
export function ScreenTile({
  participant: p,
  stream,
  self,
  onStop = null,
}: {
  participant: VideoParticipant;
  stream: MediaStream;
  self: boolean;
  onStop?: (() => void) | null;
}) {
  const { t } = useI18n();
  const label = self ? t('video.myScreen') : t('video.screenOf', { name: p.display_name });
  return (
    <li data-testid="video-screen-tile" data-user-id={p.user_id} data-self={self ? 'true' : 'false'} class="col-span-full flex flex-col gap-1">
      <figure class="relative aspect-video overflow-hidden rounded-md bg-slate-900 ring-1 ring-slate-300">
        <VideoView stream={stream} contain label={label} />
        <figcaption class="absolute inset-x-0 bottom-0 bg-slate-900/70 px-2 py-1 text-xs font-semibold text-white">{label}</figcaption>
      </figure>
      {onStop && (
        <div class="flex flex-wrap gap-1">
          <button type="button" class={videoSmallButton} data-testid="video-stop-screen" onClick={onStop}>
            {t('video.stopScreen')}
            <span class="sr-only"> {p.display_name}</span>
          </button>
        </div>
      )}
    </li>
  );
}
