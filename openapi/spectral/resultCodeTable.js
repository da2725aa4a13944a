// A partner operation documents the result codes it can answer in a markdown
// table in its description: a header row naming the columns `resultCode` and
// `resultStatus`, then one row per code. The rule checks that
//   - the table exists and every row's status is S, F or U;
//   - every code in options.required has a row (the codes every partner
//     operation can answer: signature, access, validation, rate limit, trouble);
//   - every resultCode shown in the operation's response examples has a row
//     with the same resultStatus, so table and examples cannot disagree.
//
// Given an operation of the resolved document; operations with a tag in
// options.skipTags are exempt.
const statuses = new Set(['S', 'F', 'U']);

function cells(line) {
  const trimmed = line.trim();
  if (!trimmed.startsWith('|')) return null;
  return trimmed
    .replace(/^\|/, '')
    .replace(/\|$/, '')
    .split('|')
    .map((c) => c.trim().replace(/^`(.*)`$/, '$1'));
}

// table returns the rows of the first table whose header names resultCode
// and resultStatus, as a Map code → status; null when there is none.
function table(description) {
  const lines = description.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const header = cells(lines[i]);
    if (!header) continue;
    const codeCol = header.indexOf('resultCode');
    const statusCol = header.indexOf('resultStatus');
    if (codeCol < 0 || statusCol < 0) continue;
    const rows = new Map();
    for (let j = i + 2; j < lines.length; j++) {
      const row = cells(lines[j]);
      if (!row) break;
      rows.set(row[codeCol], row[statusCol]);
    }
    return rows;
  }
  return null;
}

function exampleResults(operation) {
  const found = [];
  for (const [status, response] of Object.entries(operation.responses || {})) {
    for (const [type, media] of Object.entries((response && response.content) || {})) {
      const values = [];
      if (media && media.example !== undefined) values.push(['example', media.example]);
      for (const [name, ex] of Object.entries((media && media.examples) || {})) {
        if (ex && ex.value !== undefined) values.push([name, ex.value]);
      }
      for (const [name, value] of values) {
        const result = value && value.result;
        if (result && typeof result.resultCode === 'string') {
          found.push({ status, type, name, code: result.resultCode, resultStatus: result.resultStatus });
        }
      }
    }
  }
  return found;
}

export default function resultCodeTable(operation, options, context) {
  if (operation === null || typeof operation !== 'object') return [];
  const skip = (options && options.skipTags) || [];
  if (Array.isArray(operation.tags) && operation.tags.some((t) => skip.includes(t))) return [];
  const at = [...context.path, 'description'];
  const rows = table(typeof operation.description === 'string' ? operation.description : '');
  if (rows === null) {
    return [{ message: 'description has no result-code table (a markdown table with columns resultCode and resultStatus)', path: at }];
  }
  const problems = [];
  for (const [code, status] of rows) {
    if (!statuses.has(status)) {
      problems.push({ message: `result code ${code}: resultStatus "${status}" is not S, F or U`, path: at });
    }
  }
  for (const code of (options && options.required) || []) {
    if (!rows.has(code)) problems.push({ message: `result-code table has no row for ${code}`, path: at });
  }
  for (const ex of exampleResults(operation)) {
    if (!rows.has(ex.code)) {
      problems.push({ message: `example ${ex.name} of response ${ex.status} answers ${ex.code}, which the result-code table does not list`, path: at });
    } else if (ex.resultStatus !== undefined && rows.get(ex.code) !== ex.resultStatus) {
      problems.push({ message: `example ${ex.name} of response ${ex.status} answers ${ex.code} with ${ex.resultStatus}; the table says ${rows.get(ex.code)}`, path: at });
    }
  }
  return problems;
}
