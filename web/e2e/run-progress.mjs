#!/usr/bin/env node
// Follows a run through the `graphql-ws` client, as the frontend does, for the e2e tests
// (tests/e2e/test_runs_e2e.py).
//
//   node web/e2e/run-progress.mjs --url ws://127.0.0.1:8000/graphql --token ACCESS_TOKEN \
//        --run-id RUN_GLOBAL_ID [--after CURSOR] [--limit N]
//
// Sends graphql/operations/RunProgress.graphql with connectionParams {authorization: "Bearer …"}
// and prints each runProgress event as one JSON line on stdout. Exits 0 when the server
// completes the subscription (after the run's final event), or after --limit events (it then
// leaves: graphql-ws sends `complete` and closes the socket). GraphQL errors are printed on
// stderr as one JSON line {"errors": [...]} and the exit code is 2; a socket failure is 3.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    token: { type: 'string' },
    'run-id': { type: 'string' },
    after: { type: 'string' },
    limit: { type: 'string' },
  },
});
if (!args.url || !args.token || !args['run-id']) {
  process.stderr.write('usage: run-progress.mjs --url WS_URL --token TOKEN --run-id ID\n');
  process.exit(64);
}
const limit = args.limit === undefined ? Infinity : Number(args.limit);
const query = readFileSync(
  new URL('../../graphql/operations/RunProgress.graphql', import.meta.url),
  'utf8',
);

const client = createClient({
  url: args.url,
  webSocketImpl: WebSocket,
  connectionParams: { authorization: `Bearer ${args.token}` },
  retryAttempts: 0, // a failure must show, not be hidden behind a reconnect
});

function printErrors(errors) {
  const list = Array.isArray(errors) ? errors : [{ message: String(errors?.message ?? errors) }];
  process.stderr.write(`${JSON.stringify({ errors: list })}\n`);
}

let received = 0;
try {
  const subscription = client.iterate({
    query,
    operationName: 'RunProgress',
    variables: { runId: args['run-id'], after: args.after ?? null },
  });
  for await (const result of subscription) {
    if (result.errors) {
      printErrors(result.errors);
      process.exitCode = 2;
      break;
    }
    process.stdout.write(`${JSON.stringify(result.data.runProgress)}\n`);
    received += 1;
    if (received >= limit) break; // leaving early: iterate's return() sends `complete`
  }
} catch (error) {
  if (Array.isArray(error)) {
    printErrors(error); // the server's `error` message: GraphQL errors
    process.exitCode = 2;
  } else {
    // A CloseEvent or an Error: the socket failed.
    printErrors({ message: error?.reason || error?.message || String(error) });
    process.exitCode = 3;
  }
} finally {
  await client.dispose();
}
