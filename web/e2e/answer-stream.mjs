#!/usr/bin/env node
// Follows an answer through the `graphql-ws` client, as the frontend's Ask screen does, for the
// user-flow and e2e tests (tests/user_flows/reader_asks_a_question).
//
//   node web/e2e/answer-stream.mjs --url ws://127.0.0.1:8000/graphql --token ACCESS_TOKEN \
//        --message-id ANSWER_GLOBAL_ID [--after CURSOR] [--limit N]
//
// Sends graphql/operations/AnswerStream.graphql with connectionParams {authorization: "Bearer …"}
// and prints each answerStream event as one JSON line on stdout, with `receivedAt` (ms since the
// epoch) added. Exits 0 when the server completes the subscription (after FINISHED), or after
// --limit events (graphql-ws then sends `complete` and closes the socket). GraphQL errors are
// printed on stderr as one JSON line {"errors": [...]} and the exit code is 2; a socket failure is 3.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    token: { type: 'string' },
    'message-id': { type: 'string' },
    after: { type: 'string' },
    limit: { type: 'string' },
  },
});
if (!args.url || !args.token || !args['message-id']) {
  process.stderr.write('usage: answer-stream.mjs --url WS_URL --token TOKEN --message-id ID\n');
  process.exit(64);
}
const limit = args.limit === undefined ? Infinity : Number(args.limit);
const query = readFileSync(
  new URL('../../graphql/operations/AnswerStream.graphql', import.meta.url),
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
    operationName: 'AnswerStream',
    variables: { messageId: args['message-id'], after: args.after ?? null },
  });
  for await (const result of subscription) {
    if (result.errors) {
      printErrors(result.errors);
      process.exitCode = 2;
      break;
    }
    const event = { ...result.data.answerStream, receivedAt: Date.now() };
    process.stdout.write(`${JSON.stringify(event)}\n`);
    received += 1;
    if (received >= limit) break; // leaving early: iterate's return() sends `complete`
  }
} catch (error) {
  if (Array.isArray(error)) {
    printErrors(error);
    process.exitCode = 2;
  } else {
    printErrors({ message: error?.reason || error?.message || String(error) });
    process.exitCode = 3;
  }
} finally {
  await client.dispose();
}
