// The editor's file picker and the files waiting to be (or being) uploaded,
// each with a progress bar and, on failure, the server's error in words.
import { useId } from 'preact/hooks';
import type { ApiError } from '../api';
import { ATTACHMENT_MAX } from '../api';
import { errorMessage, useI18n } from '../i18n';
import { formatSize } from '../tasks';
import { UPLOAD_MAX_BYTES } from '../upload';

export type UploadState = 'queued' | 'uploading' | 'done' | 'error';

export interface Upload {
  key: number;
  file: File;
  state: UploadState;
  /** Bytes of the body sent so far. */
  loaded: number;
  error: ApiError | null;
}

export function percent(u: Upload): number {
  if (u.state === 'done') return 100;
  if (u.file.size === 0) return 0;
  return Math.min(100, Math.floor((u.loaded / u.file.size) * 100));
}

interface Props {
  uploads: Upload[];
  disabled: boolean;
  onAdd: (files: File[]) => void;
  onRemove: (key: number) => void;
}

export function UploadPicker({ uploads, disabled, onAdd, onRemove }: Props) {
  const { t } = useI18n();
  const id = `files-${useId()}`;
  return (
    <div class="flex flex-col gap-2">
      <label for={id} class="text-sm font-medium text-slate-800">
        {t('post.attach')}
      </label>
      <input
        id={id}
        type="file"
        multiple
        disabled={disabled}
        aria-describedby={`${id}-hint`}
        data-testid="file-input"
        onChange={(e) => {
          const input = e.currentTarget;
          onAdd(Array.from(input.files ?? []));
          input.value = ''; // the same file can be chosen again
        }}
        class="text-sm file:mr-3 file:rounded-md file:border file:border-slate-300 file:bg-white file:px-3 file:py-1.5 file:font-semibold file:text-slate-800"
      />
      <p id={`${id}-hint`} class="text-xs text-slate-600">
        {t('post.attachHint', { max: ATTACHMENT_MAX, size: formatSize(UPLOAD_MAX_BYTES) })}
      </p>
      {uploads.length > 0 && (
        <ul class="flex flex-col gap-2" data-testid="uploads">
          {uploads.map((u) => (
            <UploadRow key={u.key} upload={u} disabled={disabled} onRemove={() => onRemove(u.key)} />
          ))}
        </ul>
      )}
    </div>
  );
}

function UploadRow({ upload: u, disabled, onRemove }: { upload: Upload; disabled: boolean; onRemove: () => void }) {
  const { t } = useI18n();
  const pct = percent(u);
  const status =
    u.state === 'done' ? t('upload.done') : u.state === 'uploading' ? t('upload.percent', { pct }) : u.state === 'queued' ? t('upload.queued') : t('upload.failed');
  const bar = u.state === 'error' ? 'bg-red-600' : u.state === 'done' ? 'bg-emerald-600' : 'bg-blue-600';
  return (
    <li data-testid="upload" data-name={u.file.name} data-state={u.state} class="flex flex-col gap-1 rounded-md border border-slate-200 p-2">
      <div class="flex flex-wrap items-center justify-between gap-2 text-sm">
        <span class="font-medium">
          {u.file.name} <span class="text-slate-600">({formatSize(u.file.size)})</span>
        </span>
        <span class="flex items-center gap-2">
          <span data-testid="upload-status">{status}</span>
          {(u.state === 'queued' || u.state === 'error') && (
            <button
              type="button"
              disabled={disabled}
              onClick={onRemove}
              class="rounded border border-slate-300 bg-white px-2 py-0.5 text-xs font-semibold text-slate-800 hover:bg-slate-100 focus-visible:outline-2 focus-visible:outline-blue-600 disabled:opacity-60"
            >
              {t('upload.remove')}
              <span class="sr-only"> {u.file.name}</span>
            </button>
          )}
        </span>
      </div>
      <div
        role="progressbar"
        aria-label={t('upload.progressOf', { name: u.file.name })}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={pct}
        data-testid="upload-progress"
        data-state={u.state}
        data-progress={pct}
        class="h-2 overflow-hidden rounded-full bg-slate-200"
      >
        <div class={`h-full ${bar} transition-[width]`} style={{ width: `${pct}%` }} />
      </div>
      {u.error && (
        <p role="alert" data-testid="upload-error" class="text-sm font-medium text-red-800">
          {errorMessage(u.error)}
        </p>
      )}
    </li>
  );
}
