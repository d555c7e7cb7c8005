// Uploads a file with XMLHttpRequest, because fetch() reports no upload progress.
import { csrfToken, errorFor } from "./api.js";

// onProgress(fraction in 0..1) while bytes go up; resolves with the parsed JSON answer.
export function uploadFile(url, formData, onProgress = () => {}) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", url);
    request.setRequestHeader("X-CSRFToken", csrfToken());
    request.setRequestHeader("Accept", "application/json");
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    request.upload.addEventListener("load", () => onProgress(1));
    request.addEventListener("load", () => {
      if (request.status >= 200 && request.status < 300) {
        try {
          resolve(JSON.parse(request.responseText));
        } catch {
          reject(errorFor(request.status, ""));
        }
      } else {
        reject(errorFor(request.status, request.responseText));
      }
    });
    request.addEventListener("error", () => reject(errorFor(0, "")));
    request.addEventListener("abort", () => reject(errorFor(0, "")));
    request.send(formData);
  });
}
