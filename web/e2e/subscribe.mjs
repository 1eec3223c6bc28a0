#!/usr/bin/env node
// Follows one subscription of graphql/operations/ through the `graphql-ws` client, as the
// frontend does, for the e2e and user-flow tests (runProgress, answerStream).
//
//   node web/e2e/subscribe.mjs --url ws://127.0.0.1:8000/graphql --token ACCESS_TOKEN \
//        --operation RunProgress --variables '{"runId": "…", "after": null}' [--limit N]
//
// Sends graphql/operations/<operation>.graphql with connectionParams {authorization: "Bearer …"}
// and prints the value of the subscription's field in each message as one JSON line on stdout;
// a list (runProgress sends one or more events a message) is printed one item a line. Exits 0
// when the server completes the subscription, or once --limit items have come (it then leaves:
// graphql-ws sends `complete` and closes the socket). GraphQL errors are printed on stderr as
// one JSON line {"errors": [...]} and the exit code is 2; a socket failure is 3.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    token: { type: 'string' },
    operation: { type: 'string' },
    variables: { type: 'string' },
    limit: { type: 'string' },
  },
});
if (!args.url || !args.token || !/^[A-Za-z]+$/.test(args.operation ?? '')) {
  process.stderr.write(
    'usage: subscribe.mjs --url WS_URL --token TOKEN --operation NAME [--variables JSON]\n',
  );
  process.exit(64);
}
const limit = args.limit === undefined ? Infinity : Number(args.limit);
const query = readFileSync(
  new URL(`../../graphql/operations/${args.operation}.graphql`, import.meta.url),
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
    operationName: args.operation,
    variables: JSON.parse(args.variables ?? '{}'),
  });
  for await (const result of subscription) {
    if (result.errors) {
      printErrors(result.errors);
      process.exitCode = 2;
      break;
    }
    const [value] = Object.values(result.data); // the subscription's one root field
    for (const item of Array.isArray(value) ? value : [value]) {
      process.stdout.write(`${JSON.stringify(item)}\n`);
      received += 1;
    }
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
