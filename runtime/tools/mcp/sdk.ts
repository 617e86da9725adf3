/**
 * The pieces of `@modelcontextprotocol/sdk` Talon uses, in one module. client.ts and server.ts
 * load it only with `await import('./sdk.ts')`, on the first MCP connection or request, so a
 * device without MCP never reads the SDK (nor zod, ajv-formats, its HTTP adapter); the bundler
 * can put this one module in a file of its own (image/bundle.ts, VENDOR).
 */
export { Client } from '@modelcontextprotocol/sdk/client/index.js';
export { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
export { Server } from '@modelcontextprotocol/sdk/server/index.js';
export { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
export { ReadBuffer, serializeMessage } from '@modelcontextprotocol/sdk/shared/stdio.js';
export {
  CallToolRequestSchema,
  ErrorCode,
  ListResourcesRequestSchema,
  ListToolsRequestSchema,
  McpError,
  ReadResourceRequestSchema,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
