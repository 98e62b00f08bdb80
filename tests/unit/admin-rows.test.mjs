// objects.js's `adminRows` (how a tenant admin object reads its store) on a real SQLite
// (node:sqlite) behind the Durable Object SQL API's shape: every version but the newest comes
// back as its description only (`m:<n>`), the newest whole, every other row as stored, and a row
// that is not JSON is skipped rather than failing the read.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DatabaseSync } from 'node:sqlite';
import { adminRows } from '../../edge/cloudflare/js/objects.js';

/** A Durable Object's `storage` whose `sql.exec` runs on an in-memory SQLite. */
function storage() {
  const db = new DatabaseSync(':memory:');
  return {
    sql: {
      exec(query, ...params) {
        const rows = db.prepare(query).all(...params);
        return { toArray: () => rows, [Symbol.iterator]: () => rows[Symbol.iterator]() };
      },
    },
  };
}

const NUL = '\u0000';
const pairs = (flat) => {
  const parts = flat.split(NUL);
  const out = [];
  for (let i = 0; i + 1 < parts.length; i += 2) out.push([parts[i], parts[i + 1]]);
  return out;
};
const version = (n, config) => JSON.stringify({
  meta: { version: n, sha256: 'ab'.repeat(32), at_ms: n, author: { subject: 'alice', issuer: 'https://idp' }, operation: 'put' },
  config,
});
const row = (n) => `v:${String(n).padStart(20, '0')}`;

describe('adminRows', () => {
  it('reads each version but the newest as its description, and every other row whole', async () => {
    const s = storage();
    // The table, as the object's first write makes it (sql() creates it on first use).
    await adminRows(s);
    const put = (key, value) => s.sql.exec('INSERT INTO asc_kv (key, value) VALUES (?, ?)', key, value);
    const big = 'x'.repeat(100_000);
    put(row(1), version(1, `{"big":"${big}"}`));
    put(row(2), version(2, `{"big":"${big}"}`));
    put(row(3), version(3, '{"newest":true}'));
    put(row(4), 'not json');
    put('key/k_1', '{"record":{}}');
    put('unpublished', '{"entries":[]}');
    const got = pairs(await adminRows(s));
    const names = got.map(([k]) => k);
    // The newest version by row name is v:4, which is not JSON: it is the one read whole, and the
    // versions before it come as descriptions.
    assert.deepEqual(names.sort(), ['key/k_1', 'm:00000000000000000001', 'm:00000000000000000002', 'm:00000000000000000003', row(4), 'unpublished'].sort());
    const byName = Object.fromEntries(got);
    assert.deepEqual(JSON.parse(byName['m:00000000000000000001']), JSON.parse(version(1, '')).meta);
    assert.equal(byName['m:00000000000000000002'].includes(big), false, 'no older config is read');
    assert.equal(byName[row(4)], 'not json');
    assert.equal(byName['key/k_1'], '{"record":{}}');
  });

  it('reads the newest version whole, and skips an older row that is not JSON', async () => {
    const s = storage();
    await adminRows(s);
    const put = (key, value) => s.sql.exec('INSERT INTO asc_kv (key, value) VALUES (?, ?)', key, value);
    put(row(1), 'garbage');
    put(row(2), version(2, '{"a":2}'));
    const byName = Object.fromEntries(pairs(await adminRows(s)));
    assert.deepEqual(Object.keys(byName), [row(2)]);
    assert.equal(JSON.parse(byName[row(2)]).config, '{"a":2}');
  });

  it('takes a stored description over one read from its version, which it does not parse', async () => {
    const s = storage();
    await adminRows(s);
    const put = (key, value) => s.sql.exec('INSERT INTO asc_kv (key, value) VALUES (?, ?)', key, value);
    put(row(1), 'this row would be skipped if it were parsed');
    put(`m:${String(1).padStart(20, '0')}`, '{"stored":1}');
    put(row(2), version(2, '{"a":2}'));
    put(row(3), version(3, '{"a":3}'));
    const byName = Object.fromEntries(pairs(await adminRows(s)));
    assert.equal(byName['m:00000000000000000001'], '{"stored":1}');
    assert.deepEqual(JSON.parse(byName['m:00000000000000000002']), JSON.parse(version(2, '')).meta);
    assert.equal(JSON.parse(byName[row(3)]).config, '{"a":3}');
    assert.equal(Object.keys(byName).length, 3);
  });

  it('is empty for an empty store', async () => {
    assert.equal(await adminRows(storage()), '');
  });
});
