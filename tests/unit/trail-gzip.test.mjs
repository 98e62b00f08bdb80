// js/trail.js's gzip of audit batch objects (workerd's zlib through node:zlib; Node's is the same
// library): the RFC 1952 header the core's own compressor writes (mtime 0, no name, XFL 0 at
// level 6, OS 255), a trailer with the data's CRC-32 and length, the input back from any gunzip,
// and the same bytes for the same input.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { crc32, gunzipSync } from 'node:zlib';
import { gzipBatch } from '../../edge/cloudflare/js/trail.js';

const lines = Array.from({ length: 300 }, (_, i) =>
  JSON.stringify({ hash: i.toString(16).padStart(64, '0'), record: { request_id: `req_${i}`, outcome: 'ok' }, sequence: i + 1, stream: 'eu-0-of-4' }) + '\n').join('');
const input = new TextEncoder().encode(lines);

describe('gzipBatch', () => {
  it('writes the fixed header: ID1 ID2, deflate, no flags, mtime 0, XFL 0, OS 255', () => {
    const out = gzipBatch(input);
    assert.ok(out instanceof Uint8Array);
    assert.deepEqual([...out.subarray(0, 10)], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
  });

  it('ends with the CRC-32 and the length of the input, little-endian', () => {
    const out = gzipBatch(input);
    const trailer = new DataView(out.buffer, out.byteOffset + out.length - 8, 8);
    assert.equal(trailer.getUint32(0, true), crc32(input));
    assert.equal(trailer.getUint32(4, true), input.length);
  });

  it('decompresses to the input, and compresses it', () => {
    const out = gzipBatch(input);
    assert.deepEqual(new Uint8Array(gunzipSync(out)), input);
    assert.ok(out.length < input.length / 4, `${out.length} of ${input.length} bytes`);
  });

  it('gives the same bytes for the same input (a shipment rendered again uploads the same object)', () => {
    assert.deepEqual(gzipBatch(input), gzipBatch(input.slice()));
  });
});
