// Creating an ML task, shared by the dataset page (new analysis) and the analysis page.
import { postJSON } from "./api.js";

export function createMLTask(analysisId, target, predictionType) {
  const body = { target };
  if (predictionType) body.prediction_type = predictionType; // empty: the server guesses
  return postJSON(`/api/analyses/${analysisId}/mltasks/`, body);
}

export function mltaskPageUrl(projectId, mltaskId) {
  return `/projects/${projectId}/mltasks/${mltaskId}/`;
}
