// Uploading a file with progress: fetch cannot report upload progress, so this one request
// goes through XMLHttpRequest, authenticated like every other (token or CSRF header).
import { ApiProblem, authHeaders, type Problem } from "../api/client";

export function uploadWithProgress<T>(url: string, form: FormData, onProgress: (percent: number) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(Math.round((e.loaded / e.total) * 100));
    };
    xhr.onerror = () => reject(new Error(xhr.statusText || "network error"));
    xhr.onload = () => {
      let body: unknown = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(body as T);
        return;
      }
      const p = (body ?? {}) as Partial<Problem>;
      reject(
        new ApiProblem({
          type: p.type ?? "about:blank",
          title: p.title ?? xhr.statusText,
          status: xhr.status,
          detail: p.detail ?? `HTTP ${xhr.status}`,
          code: p.code ?? "http.error",
          request_id: p.request_id,
          errors: p.errors,
        }),
      );
    };
    xhr.send(form);
  });
}
