// Every JSON body an operation takes or answers with carries at least one
// example: request bodies in every media type, responses in every JSON media
// type (application/json or +json). Text bodies (text/plain, text/html,
// application/yaml) are exempt: their schema says enough.
//
// Given an operation of the resolved document (shared responses included);
// operations with a tag in options.skipTags are exempt.
const jsonMediaType = /^application\/(.+\+)?json(;.*)?$/i;

function hasExample(media) {
  if (media === null || typeof media !== 'object') return false;
  if (media.example !== undefined) return true;
  return media.examples !== null && typeof media.examples === 'object' && Object.keys(media.examples).length > 0;
}

function skipped(operation, options) {
  const skip = (options && options.skipTags) || [];
  return Array.isArray(operation.tags) && operation.tags.some((t) => skip.includes(t));
}

export default function operationExamples(operation, options, context) {
  if (operation === null || typeof operation !== 'object') return [];
  if (skipped(operation, options)) return [];
  const problems = [];
  const content = operation.requestBody && operation.requestBody.content;
  for (const [type, media] of Object.entries(content || {})) {
    if (!hasExample(media)) {
      problems.push({
        message: `request body (${type}) has no example`,
        path: [...context.path, 'requestBody', 'content', type],
      });
    }
  }
  for (const [status, response] of Object.entries(operation.responses || {})) {
    for (const [type, media] of Object.entries((response && response.content) || {})) {
      if (jsonMediaType.test(type) && !hasExample(media)) {
        problems.push({
          message: `response ${status} (${type}) has no example`,
          path: [...context.path, 'responses', status, 'content', type],
        });
      }
    }
  }
  return problems;
}
