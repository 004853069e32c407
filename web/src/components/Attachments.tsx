// A post's attachments: download links with sizes, and (when editing) a
// remove button per file.
import { useState } from 'preact/hooks';
import * as api from '../api';
import type { ApiError, FileInfo } from '../api';
import { toApiError } from '../forms';
import { errorMessage, useI18n } from '../i18n';
import { formatSize } from '../tasks';
import { ErrorAlert } from './Alert';
import { Button } from './Button';
import { linkClass } from './Study';

interface Props {
  studyId: number;
  files: FileInfo[];
  /** Given when files may be removed (the editor); called with the removed file's id. */
  onRemoved?: (fileId: number) => void;
  /** Which files get a remove button when `onRemoved` is given (default: all). */
  canRemove?: (file: FileInfo) => boolean;
}

export function AttachmentList({ studyId, files, onRemoved, canRemove }: Props) {
  const { t } = useI18n();
  const [busy, setBusy] = useState<number | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  if (files.length === 0) return null;

  async function remove(file: FileInfo) {
    if (busy !== null) return;
    setBusy(file.id);
    setError(null);
    try {
      await api.deleteFile(studyId, file.id);
      onRemoved?.(file.id);
    } catch (e) {
      setError(toApiError(e));
    } finally {
      setBusy(null);
    }
  }

  return (
    <div class="flex flex-col gap-2">
      <ul class="flex flex-col gap-1" data-testid="attachments" aria-label={t('post.attachments')}>
        {files.map((file) => (
          <li key={file.id} data-testid="attachment" data-file-id={file.id} class="flex flex-wrap items-center gap-2">
            <a href={file.url} download={file.name} class={linkClass} data-testid="attachment-link">
              {file.name}
            </a>
            <span class="text-sm text-slate-600" data-testid="attachment-size">
              {formatSize(file.size)}
            </span>
            {onRemoved && (!canRemove || canRemove(file)) && (
              <Button variant="secondary" disabled={busy !== null} onClick={() => void remove(file)}>
                {t('post.removeAttachment')}
                <span class="sr-only"> {file.name}</span>
              </Button>
            )}
          </li>
        ))}
      </ul>
      {error && <ErrorAlert>{errorMessage(error)}</ErrorAlert>}
    </div>
  );
}
