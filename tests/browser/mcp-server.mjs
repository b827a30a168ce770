// A small MCP server, built with the official MCP TypeScript SDK, that Tollgate protects as
// a gateway: it listens on 127.0.0.1:PORT and serves the Streamable HTTP transport at /mcp,
// statelessly (a new server and transport for every POST; GET and DELETE answer 405, as
// the SDK's stateless example does).
//
// It checks no token itself. Tollgate stands in front, verifies the agent's access token,
// and passes who it is in the request headers x-tollgate-user, x-tollgate-client and
// x-tollgate-scopes; the whoami tool answers with them. delete_everything is the
// "dangerous" tool Tollgate guards by a route of its own.
//
// Prints "listening" on stdout once it accepts connections.

import { createServer } from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import * as z from 'zod/v4';

const PORT = Number(process.env.PORT);
if (!PORT) throw new Error('missing environment variable PORT');

const text = (t) => ({ content: [{ type: 'text', text: t }] });

/// The identity Tollgate verified, from the request's headers (lower-cased by the transport).
function identity(extra) {
  const headers = extra?.requestInfo?.headers ?? {};
  const one = (name) => {
    const v = headers[name];
    return (Array.isArray(v) ? v.join(' ') : v) || null;
  };
  const scopes = one('x-tollgate-scopes');
  return {
    user: one('x-tollgate-user'),
    client: one('x-tollgate-client'),
    scopes: scopes ? scopes.split(/[\s,]+/).filter(Boolean) : [],
  };
}

function mcpServer() {
  const server = new McpServer({ name: 'tollgate-test-mcp', version: '1.0.0' });
  server.registerTool('echo', {
    description: 'Answers with the text it is given.',
    inputSchema: { text: z.string().describe('The text to send back') },
  }, async ({ text: t }) => text(t));
  server.registerTool('whoami', {
    description: 'Who Tollgate says is calling: user, client and scopes.',
  }, async (extra) => text(JSON.stringify(identity(extra))));
  server.registerTool('delete_everything', {
    description: 'Deletes everything. Dangerous.',
    annotations: { destructiveHint: true },
  }, async () => text('deleted'));
  return server;
}

function jsonRpcError(res, status, code, message, extraHeaders = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...extraHeaders });
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null }));
}

async function readJson(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const raw = Buffer.concat(chunks).toString('utf8');
  return JSON.parse(raw);
}

async function post(req, res) {
  let body;
  try {
    body = await readJson(req);
  } catch {
    return jsonRpcError(res, 400, -32700, 'Parse error');
  }
  const server = mcpServer();
  const transport = new StreamableHTTPServerTransport({
    sessionIdGenerator: undefined,
    enableJsonResponse: true,
  });
  res.on('close', () => {
    transport.close();
    server.close();
  });
  await server.connect(transport);
  await transport.handleRequest(req, res, body);
}

const http = createServer((req, res) => {
  const { pathname } = new URL(req.url, 'http://127.0.0.1');
  if (pathname !== '/mcp') return jsonRpcError(res, 404, -32000, 'Not found');
  if (req.method === 'POST') {
    return post(req, res).catch((e) => {
      console.error('MCP request failed:', e);
      if (!res.headersSent) jsonRpcError(res, 500, -32603, 'Internal server error');
      else res.end();
    });
  }
  return jsonRpcError(res, 405, -32000, 'Method not allowed.', { allow: 'POST' });
});

http.listen(PORT, '127.0.0.1', () => console.log('listening'));
