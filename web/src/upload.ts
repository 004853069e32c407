// Attachment uploads with progress. `fetch` cannot report upload progress, so
// this uses XMLHttpRequest: the request body is the raw File (not multipart),
// its Content-Type is the file's own type, and the original name travels
// URL-encoded in `?name=`. The browser adds the Origin header the server checks
// on a same-origin POST, and the session cookie (`withCredentials`).
import { ApiError, errorFromResponse, type FileInfo } from './api';

export interface UploadHandle {
  /** Resolves with the stored file, or rejects with an `ApiError`. */
  done: Promise<FileInfo>;
  abort(): void;
}

/** Where a file goes: a post's attachments, or (`postId` null) the study's recruiting post. */
export interface UploadTarget {
  studyId: number;
  postId: number | null;
}

export function attachmentUrl(target: UploadTarget, name: string): string {
  const base = target.postId === null ? `/api/studies/${target.studyId}` : `/api/studies/${target.studyId}/posts/${target.postId}`;
  return `${base}/attachments?name=${encodeURIComponent(name)}`;
}

/** The error for a file over the server's per-file limit, refused before anything is sent. */
export function tooLargeError(): ApiError {
  return new ApiError(413, 'payload_too_large', 'file too large');
}

function parseJson(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * Upload `file` to a post or the recruiting post. `onProgress(loaded, total)`
 * follows the request body; it reports `total` once more when the server has
 * answered with success. A file over `maxBytes` (the server's
 * `upload_max_bytes`, when known) is refused here without a request.
 */
export function uploadAttachment(
  target: UploadTarget,
  file: File,
  onProgress: (loaded: number, total: number) => void,
  maxBytes: number | null,
): UploadHandle {
  if (maxBytes !== null && file.size > maxBytes) {
    return { done: Promise.reject(tooLargeError()), abort: () => {} };
  }
  const xhr = new XMLHttpRequest();
  const done = new Promise<FileInfo>((resolve, reject) => {
    xhr.open('POST', attachmentUrl(target, file.name));
    xhr.withCredentials = true;
    xhr.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
    xhr.onload = () => {
      const data = parseJson(xhr.responseText);
      if (xhr.status >= 200 && xhr.status < 300) {
        const info = (data as { file?: FileInfo } | undefined)?.file;
        if (!info) {
          reject(new ApiError(xhr.status, 'unknown', 'upload answered without a file'));
          return;
        }
        onProgress(file.size, file.size);
        resolve(info);
        return;
      }
      reject(errorFromResponse(xhr.status, xhr.statusText, data, xhr.getResponseHeader('Retry-After')));
    };
    // A server refusing a body may close the connection before the browser has
    // sent it all, which XHR only reports as a network error (oversized files
    // never get here: they are refused above).
    xhr.onerror = () => reject(new ApiError(0, 'network', 'upload failed'));
    xhr.onabort = () => reject(new ApiError(0, 'aborted', 'upload cancelled'));
    xhr.send(file);
  });
  return { done, abort: () => xhr.abort() };
}
