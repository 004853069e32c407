// Attachment uploads with progress. `fetch` cannot report upload progress, so
// this uses XMLHttpRequest: the request body is the raw File (not multipart),
// its Content-Type is the file's own type, and the original name travels
// URL-encoded in `?name=`. The browser adds the Origin header the server checks
// on a same-origin POST, and the session cookie (`withCredentials`).
import { ApiError, errorFromResponse, type FileInfo } from './api';

/** The server's default per-file limit (50 MiB); used only to explain a dropped connection. */
export const UPLOAD_MAX_BYTES = 50 * 1024 * 1024;

export interface UploadHandle {
  /** Resolves with the stored file, or rejects with an `ApiError`. */
  done: Promise<FileInfo>;
  abort(): void;
}

export function attachmentUrl(studyId: number, postId: number, name: string): string {
  return `/api/studies/${studyId}/posts/${postId}/attachments?name=${encodeURIComponent(name)}`;
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
 * Upload `file` to a post. `onProgress(loaded, total)` follows the request
 * body; it reports `total` once more when the server has answered with success.
 */
export function uploadAttachment(
  studyId: number,
  postId: number,
  file: File,
  onProgress: (loaded: number, total: number) => void,
): UploadHandle {
  const xhr = new XMLHttpRequest();
  const done = new Promise<FileInfo>((resolve, reject) => {
    xhr.open('POST', attachmentUrl(studyId, postId, file.name));
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
    xhr.onerror = () => {
      // A server refusing an oversized body may close the connection before
      // the browser has sent it all, which XHR only reports as a network error.
      if (file.size > UPLOAD_MAX_BYTES) reject(new ApiError(413, 'payload_too_large', 'file too large'));
      else reject(new ApiError(0, 'network', 'upload failed'));
    };
    xhr.onabort = () => reject(new ApiError(0, 'aborted', 'upload cancelled'));
    xhr.send(file);
  });
  return { done, abort: () => xhr.abort() };
}
