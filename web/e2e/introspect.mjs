#!/usr/bin/env node
// Loads the schema as codegen tools, Apollo and Postman do, for the e2e tests
// (tests/e2e/test_introspection_e2e.py).
//
//   node web/e2e/introspect.mjs --url http://127.0.0.1:8000/graphql [--options JSON]
//
// Sends graphql-js's getIntrospectionQuery(options) over HTTP (POST, operationName
// "IntrospectionQuery"), builds the schema with buildClientSchema and prints one JSON line on
// stdout: {"queryFields": [...], "types": N, "directives": [...], "description": ...}.
// GraphQL errors are printed on stderr as one JSON line {"errors": [...]} with exit code 2;
// a result buildClientSchema refuses exits 3 (its message on stderr).

import { parseArgs } from 'node:util';

import { buildClientSchema, getIntrospectionQuery } from 'graphql';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    options: { type: 'string' },
  },
});
if (!args.url) {
  process.stderr.write('usage: introspect.mjs --url HTTP_URL [--options JSON]\n');
  process.exit(64);
}
const options = args.options ? JSON.parse(args.options) : {};

const response = await fetch(args.url, {
  method: 'POST',
  headers: { 'content-type': 'application/json', accept: 'application/json' },
  body: JSON.stringify({
    query: getIntrospectionQuery(options),
    operationName: 'IntrospectionQuery',
  }),
});
const body = await response.json();
if (body.errors) {
  process.stderr.write(`${JSON.stringify({ status: response.status, errors: body.errors })}\n`);
  process.exit(2);
}

let schema;
try {
  schema = buildClientSchema(body.data);
} catch (error) {
  process.stderr.write(`${error.message}\n`);
  process.exit(3);
}
process.stdout.write(
  `${JSON.stringify({
    queryFields: Object.keys(schema.getQueryType().getFields()).sort(),
    types: Object.keys(schema.getTypeMap()).length,
    directives: schema.getDirectives().map((d) => d.name).sort(),
    description: schema.description ?? null,
  })}\n`,
);
