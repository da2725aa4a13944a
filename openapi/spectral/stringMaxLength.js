// Every string schema bounds its length with maxLength, so that no field is
// unbounded in what orderhub accepts, stores or answers. A string with an enum
// is bounded by its values and is exempt.
//
// Given a schema of the unresolved document: a $ref is checked where it
// points, so each schema is reported once, at its own place. Walks into the
// subschemas of the schema.
const subschemaMaps = ['properties', 'patternProperties'];
const subschemaLists = ['allOf', 'anyOf', 'oneOf'];
const subschemaSingles = ['items', 'additionalProperties', 'not'];

function walk(schema, path, problems) {
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema) || '$ref' in schema) return;
  const isString = schema.type === 'string' || (Array.isArray(schema.type) && schema.type.includes('string'));
  if (isString && schema.maxLength === undefined && !Array.isArray(schema.enum)) {
    problems.push({ message: 'string schema has no maxLength', path });
  }
  for (const key of subschemaMaps) {
    for (const [name, sub] of Object.entries(schema[key] || {})) walk(sub, [...path, key, name], problems);
  }
  for (const key of subschemaLists) {
    (Array.isArray(schema[key]) ? schema[key] : []).forEach((sub, i) => walk(sub, [...path, key, i], problems));
  }
  for (const key of subschemaSingles) walk(schema[key], [...path, key], problems);
}

export default function stringMaxLength(schema, _options, context) {
  const problems = [];
  walk(schema, context.path, problems);
  return problems;
}
