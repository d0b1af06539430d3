#!/usr/bin/env node
// Fake OpenAI-compatible upstream for the unigate benchmark.
//
// Dependency-free (Node >= 18). Built to never be the bottleneck: every response
// body is precomputed at start-up, the request body is only scanned for
// `"stream":true` / `"include_usage":true` (substring checks), and keep-alive is on.
//
//   POST /v1/chat/completions   non-stream: one fixed chat.completion JSON
//                               stream: role chunk, 5 content chunks, finish chunk,
//                               usage chunk (if stream_options.include_usage), [DONE]
//   GET  /v1/models             a fixed model list
//   GET  /_bench/stats          {"connections": accepted TCP connections, "requests": requests seen}
//                               (lets bench/run.sh see whether a gateway reuses upstream connections)
//
// Usage: node bench/fake_upstream.js [PORT]   (or FAKE_UPSTREAM_PORT=PORT; default 18080)
//        FAKE_UPSTREAM_HOST (default 127.0.0.1)
'use strict';

const http = require('http');

const PORT = parseInt(process.argv[2] || process.env.FAKE_UPSTREAM_PORT || '18080', 10);
const HOST = process.env.FAKE_UPSTREAM_HOST || '127.0.0.1';
const CREATED = Math.floor(Date.now() / 1000);
const ID = 'chatcmpl-bench0000000000000000000000';
const MODEL = 'gpt-4o';
const USAGE = { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 };

const COMPLETION = Buffer.from(JSON.stringify({
  id: ID,
  object: 'chat.completion',
  created: CREATED,
  model: MODEL,
  system_fingerprint: 'fp_bench',
  choices: [{
    index: 0,
    message: { role: 'assistant', content: 'Hello! How can I help you today?', refusal: null },
    logprobs: null,
    finish_reason: 'stop',
  }],
  usage: USAGE,
}));

function chunk(delta, finishReason, usage) {
  const obj = {
    id: ID,
    object: 'chat.completion.chunk',
    created: CREATED,
    model: MODEL,
    system_fingerprint: 'fp_bench',
    choices: usage ? [] : [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
  };
  if (usage) obj.usage = usage;
  return 'data: ' + JSON.stringify(obj) + '\n\n';
}

function buildStream(includeUsage) {
  let s = chunk({ role: 'assistant', content: '' }, null);
  for (const piece of ['Hello', '!', ' How', ' can', ' I help?']) s += chunk({ content: piece }, null);
  s += chunk({}, 'stop');
  if (includeUsage) s += chunk(null, null, USAGE);
  s += 'data: [DONE]\n\n';
  return Buffer.from(s);
}
const STREAM_PLAIN = buildStream(false);
const STREAM_USAGE = buildStream(true);

const MODELS = Buffer.from(JSON.stringify({
  object: 'list',
  data: [{ id: MODEL, object: 'model', created: CREATED, owned_by: 'bench' }],
}));

const NOT_FOUND = Buffer.from(JSON.stringify({
  error: { message: 'not found', type: 'invalid_request_error', code: 'not_found' },
}));

const RE_STREAM = /"stream"\s*:\s*true/;
const RE_USAGE = /"include_usage"\s*:\s*true/;

function send(res, status, type, body) {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': body.length });
  res.end(body);
}

let connections = 0;
let requests = 0;

const server = http.createServer((req, res) => {
  const url = req.url;
  requests++;
  if (req.method === 'POST' && url.startsWith('/v1/chat/completions')) {
    const parts = [];
    req.on('data', (d) => parts.push(d));
    req.on('end', () => {
      const body = parts.length === 1 ? parts[0].toString('latin1') : Buffer.concat(parts).toString('latin1');
      if (RE_STREAM.test(body)) {
        // Content-Length is known, but real providers stream; keep it chunked like they do.
        res.writeHead(200, {
          'Content-Type': 'text/event-stream',
          'Cache-Control': 'no-cache',
        });
        res.end(RE_USAGE.test(body) ? STREAM_USAGE : STREAM_PLAIN);
      } else {
        send(res, 200, 'application/json', COMPLETION);
      }
    });
    return;
  }
  // Drain any body, then answer.
  req.resume();
  req.on('end', () => {
    if (req.method === 'GET' && (url === '/v1/models' || url.startsWith('/v1/models?'))) {
      send(res, 200, 'application/json', MODELS);
    } else if (req.method === 'GET' && url === '/_bench/stats') {
      send(res, 200, 'application/json', Buffer.from(JSON.stringify({ connections, requests })));
    } else if (req.method === 'GET' && (url === '/health' || url === '/')) {
      send(res, 200, 'application/json', Buffer.from('{"status":"ok"}'));
    } else {
      send(res, 404, 'application/json', NOT_FOUND);
    }
  });
});

server.on('connection', () => { connections++; });
server.keepAliveTimeout = 120000;
server.headersTimeout = 125000;
server.requestTimeout = 0;
server.maxRequestsPerSocket = 0;

server.listen(PORT, HOST, () => {
  process.stdout.write(`fake upstream listening on http://${HOST}:${PORT}\n`);
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { server.close(); process.exit(0); });
}
