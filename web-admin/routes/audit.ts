/** The signed audit log: query, verify, head, export. */
import { defineRoutes, route } from '../route.ts';
import type { AuditQuery } from '../../runtime/audit/chain.ts';
import { anyObject, bool, int, ms, num, obj, open, str } from './schemas.ts';

const ENTRY = open({ seq: num, ts: num, actor: str(1000), action: str(1000), decision: str() }, [
  'seq',
  'ts',
  'actor',
  'action',
  'decision',
]);

export default defineRoutes([
  route({
    method: 'GET',
    path: '/api/v1/audit',
    operationId: 'queryAudit',
    summary:
      'Audit entries, newest first, filtered by actor, action (exact or `prefix.*`), decision, ts range; paged by cursor',
    tag: 'audit',
    access: 'read',
    query: obj(
      {
        actor: str(200),
        action: str(200),
        decision: {
          type: 'string',
          pattern: '^(allow|deny|ok|error|info)(,(allow|deny|ok|error|info))*$',
          maxLength: 40,
        },
        from: ms,
        to: ms,
        cursor: str(20, { pattern: '^[0-9]+$' }),
        limit: int(1, 1000),
        order: { type: 'string', enum: ['asc', 'desc'] },
      },
      ['actor', 'action', 'decision', 'from', 'to', 'cursor', 'limit', 'order'],
    ),
    responses: {
      200: {
        description: 'a page of entries',
        schema: open({
          items: { type: 'array', items: ENTRY },
          nextCursor: { type: ['string', 'null'], maxLength: 40 },
        }),
      },
    },
    handler: ({ api, caller, query }) => {
      const { decision, ...q } = query;
      // the schema's pattern admits only decisions
      return api.audit.query(
        caller,
        decision === undefined ? q : { ...q, decision: decision.split(',') as AuditQuery['decision'] },
      );
    },
  }),
  route({
    method: 'POST',
    path: '/api/v1/audit/verify',
    operationId: 'verifyAudit',
    summary:
      'Verify the chain (from the last verified checkpoint, or from the start) and optionally that it still holds a head seen elsewhere',
    tag: 'audit',
    access: 'read',
    body: obj({ from: { type: 'string', enum: ['start', 'checkpoint'] }, against: anyObject }, ['from', 'against']),
    responses: { 200: { description: 'the verification report', schema: open({ ok: bool, checked: num }) } },
    handler: ({ api, caller, body }) => api.audit.verify(caller, body),
  }),
  {
    method: 'GET',
    path: '/api/v1/audit/head',
    operationId: 'auditHead',
    summary: 'The newest signed checkpoint',
    tag: 'audit',
    access: 'read',
    responses: {
      200: {
        description: 'the head checkpoint, null before the first',
        schema: obj({ head: { anyOf: [anyObject, { type: 'null' }] } }),
      },
    },
    handler: async ({ api, caller }) => ({ head: await api.audit.head(caller) }),
  },
  route({
    method: 'GET',
    path: '/api/v1/audit/export',
    operationId: 'exportAudit',
    summary: 'The log as JSON Lines (entries and checkpoints in seq order), optionally from a seq',
    tag: 'audit',
    access: 'read',
    query: obj({ since: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER } }, ['since']),
    responses: {
      200: { description: 'one JSON object per line (runtime/audit/FORMAT.md)', contentType: 'application/x-ndjson' },
    },
    handler: async ({ api, caller, query, res }) => {
      res.writeHead(200, {
        'content-type': 'application/x-ndjson',
        'content-disposition': 'attachment; filename="talon-audit.jsonl"',
      });
      await api.audit.export(caller, res, query.since !== undefined ? { since: query.since } : {});
      res.end();
      return undefined;
    },
  }),
]);
