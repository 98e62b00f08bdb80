// Reads the audit bucket out of wrangler's persisted local state (after wrangler has stopped), as
// a compliance team would read the real bucket, into a folder the verifier CLI can check.
import { Miniflare, convertV4MiniflareOptions } from 'miniflare';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export async function downloadAuditBucket(persist, outDir, bucketName = 'asc-audit-local', prefix = 'audit/') {
  const mf = new Miniflare(convertV4MiniflareOptions({
    modules: true,
    script: 'export default { fetch() { return new Response("ok"); } }',
    r2Buckets: { AUDIT_BUCKET: bucketName },
    // As wrangler's own `r2 object` commands open it.
    resourcePersistencePath: join(persist, 'v3'),
    cf: false,
  }));
  try {
    const bucket = await mf.getR2Bucket('AUDIT_BUCKET');
    const keys = [];
    let cursor;
    do {
      const page = await bucket.list({ prefix, cursor });
      for (const o of page.objects) keys.push(o.key);
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor);
    for (const key of keys) {
      const object = await bucket.get(key);
      const bytes = Buffer.from(await object.arrayBuffer());
      const path = join(outDir, key);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, bytes);
    }
    return keys;
  } finally {
    await mf.dispose();
  }
}

// `node tests/e2e/r2.mjs STATE_DIR OUT_DIR [BUCKET]`: used by scripts/audit-local.
if (import.meta.url === (await import('node:url')).pathToFileURL(process.argv[1]).href) {
  const keys = await downloadAuditBucket(process.argv[2], process.argv[3], process.argv[4]);
  console.error(`[asc] copied ${keys.length} objects`);
}
