// A file picker and the files waiting to be (or being) uploaded, each with a
// progress bar and, on failure, the error in words. Used by the post editor
// and by the leader's recruiting-post files on the study page. The server's
// limits (`GET /api/limits`) are shown, and the picker stops offering files
// once the post would have `attachments_per_post` of them.
import { useId, useState } from 'preact/hooks';
import { errorMessage, useI18n } from '../i18n';
import { useLimits } from '../limits';
import { formatSize } from '../tasks';
import { percent, slotsLeft, type Upload } from '../uploadQueue';

export type { Upload, UploadState } from '../uploadQueue';

interface Props {
  /** The file input's label. */
  label: string;
  /** Said after the limits in the hint (when the files are sent). */
  note: string;
  uploads: Upload[];
  /** Files the post has already. */
  stored: number;
  disabled: boolean;
  onAdd: (files: File[]) => void;
  onRemove: (key: number) => void;
}

export function UploadPicker({ label, note, uploads, stored, disabled, onAdd, onRemove }: Props) {
  const { t } = useI18n();
  const id = `files-${useId()}`;
  const limits = useLimits();
  const [dropped, setDropped] = useState(0);
  const left = slotsLeft(stored, uploads, limits);
  const full = left !== null && left <= 0;
  const max = limits?.attachments_per_post ?? 0;
  return (
    <div class="flex flex-col gap-2">
      <label for={id} class="text-sm font-medium text-slate-800">
        {label}
      </label>
      <input
        id={id}
        type="file"
        multiple
        disabled={disabled || full}
        aria-describedby={`${id}-hint${full ? ` ${id}-full` : ''}`}
        data-testid="file-input"
        onChange={(e) => {
          const input = e.currentTarget;
          const chosen = Array.from(input.files ?? []);
          input.value = ''; // the same file can be chosen again
          const taken = left === null ? chosen : chosen.slice(0, left);
          setDropped(chosen.length - taken.length);
          if (taken.length > 0) onAdd(taken);
        }}
        class="text-sm file:mr-3 file:rounded-md file:border file:border-slate-300 file:bg-white file:px-3 file:py-1.5 file:font-semibold file:text-slate-800 disabled:opacity-60"
      />
      <p id={`${id}-hint`} class="text-xs text-slate-600" data-testid="upload-hint">
        {limits ? `${t('upload.limits', { max: limits.attachments_per_post, size: formatSize(limits.upload_max_bytes) })} ${note}` : note}
      </p>
      {full && (
        <p id={`${id}-full`} role="status" data-testid="upload-full" class="text-sm font-medium text-slate-800">
          {t('upload.full', { max })}
        </p>
      )}
      {dropped > 0 && (
        <p role="status" data-testid="upload-dropped" class="text-sm font-medium text-amber-900">
          {t('upload.notAdded', { count: dropped, max })}
        </p>
      )}
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
