// Creating an ML task, shared by the dataset page (new analysis) and the analysis page.
import { postJSON } from "./api.js";

// `alsoPredict`: more target columns for a multi-output model (their types are guessed).
export function createMLTask(analysisId, target, predictionType, alsoPredict = []) {
  const first = { name: target };
  if (predictionType) first.prediction_type = predictionType; // empty: the server guesses
  const body = alsoPredict.length
    ? { targets: [first, ...alsoPredict.map((name) => ({ name }))] }
    : { target, ...(predictionType ? { prediction_type: predictionType } : {}) };
  return postJSON(`/api/analyses/${analysisId}/mltasks/`, body);
}

export function mltaskPageUrl(projectId, mltaskId) {
  return `/projects/${projectId}/mltasks/${mltaskId}/`;
}
