#!/usr/bin/env node
// Runs the GraphQL over HTTP conformance audits of the pinned `graphql-http` package
// (`serverAudits`) against a live server, for the e2e tests (tests/e2e/test_transport_e2e.py).
//
//   node web/e2e/graphql-http-audit.mjs --url http://127.0.0.1:8000/graphql [--no-preflight-header]
//
// Every request carries `GraphQL-Require-Preflight: 1`, as the app's own clients send it: the
// server executes GET requests only with that header (the CSRF rule, docs/security.md). With
// --no-preflight-header the requests go out as the audits write them.
//
// Prints one JSON line per audit, {"id", "status", "name"[, "reason", "httpStatus", "body"]},
// then a summary line {"summary": {"total", "ok", "notice", "warn", "error"}}. Exits 0 when no
// audit ended in `warn` or `error`, 1 otherwise, 64 on bad arguments.

import { parseArgs } from 'node:util';

import { serverAudits } from 'graphql-http';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    'no-preflight-header': { type: 'boolean', default: false },
  },
});
if (!args.url) {
  process.stderr.write('usage: graphql-http-audit.mjs --url HTTP_URL [--no-preflight-header]\n');
  process.exit(64);
}

const withPreflightHeader = (input, init = {}) => {
  const headers = new Headers(init.headers);
  headers.set('GraphQL-Require-Preflight', '1');
  return fetch(input, { ...init, headers });
};

const audits = serverAudits({
  url: args.url,
  fetchFn: args['no-preflight-header'] ? fetch : withPreflightHeader,
});

const summary = { total: audits.length, ok: 0, notice: 0, warn: 0, error: 0 };
for (const audit of audits) {
  const result = await audit.fn();
  summary[result.status] += 1;
  const line = { id: result.id, status: result.status, name: result.name };
  if (result.status !== 'ok') {
    line.reason = result.reason;
    line.httpStatus = result.response.status;
    line.body = await result.response.text().catch((error) => `(unreadable: ${error})`);
  }
  process.stdout.write(`${JSON.stringify(line)}\n`);
}
process.stdout.write(`${JSON.stringify({ summary })}\n`);
process.exit(summary.warn + summary.error === 0 ? 0 : 1);
