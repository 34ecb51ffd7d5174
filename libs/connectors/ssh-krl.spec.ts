import { describe, expect, it } from '@jest/globals';
import { decodeKrl, encodeKrl, sameRevocations } from './ssh-krl.js';

// A CA made with `ssh-keygen -t ed25519`; its public key blob is the base64 of its .pub line.
const CA_BLOB = Buffer.from('AAAAC3NzaC1lZDI1NTE5AAAAIBUpxi4HzeXkg+3DnzGdC7skK+GZ8lcX4XAKIXtGCq26', 'base64');
// `ssh-keygen -k -f gold.krl -s ca.pub -z 42 spec` (OpenSSH 9.2) with the spec lines `serial: 1311768467294899695`,
// `serial: 9223372036854775807`, `serial: 77`, `serial: 4611686018427387904`; serials this far apart make
// ssh-keygen choose a serial list section, the only kind we write.
const SSH_KEYGEN_KRL = Buffer.from(
  '5353484b524c0a0000000001000000000000002a000000006b04450600000000000000000000000000000000010000006000000033' +
    '0000000b7373682d65643235353139000000201529c62e07cde5e483edc39f319d0bbb242be199f25717e1700a217b460aadba00' +
    '0000002000000020000000000000004d1234567890abcdef40000000000000007fffffffffffffff',
  'hex',
);
const SSH_KEYGEN_GENERATED_AT = new Date(0x6b044506 * 1000);

/** Reads the header of a KRL back, to check fields independently of the encoder. */
function header(krl: Buffer) {
  let offset = 0;
  const take = (length: number) => krl.subarray(offset, (offset += length));
  const magic = take(8).toString('latin1');
  const formatVersion = take(4).readUInt32BE();
  const version = take(8).readBigUInt64BE();
  const generatedDate = take(8).readBigUInt64BE();
  const flags = take(8).readBigUInt64BE();
  const reserved = take(take(4).readUInt32BE());
  const comment = take(take(4).readUInt32BE()).toString('utf8');
  return {
    magic,
    formatVersion,
    version,
    generatedDate,
    flags,
    reserved,
    comment,
    rest: krl.subarray(offset),
  };
}

describe('encodeKrl', () => {
  it('produces the same bytes as ssh-keygen -k for the same revocations', () => {
    const krl = encodeKrl({
      version: 42n,
      generatedAt: SSH_KEYGEN_GENERATED_AT,
      comment: '',
      // Unsorted and with a duplicate: the list is sorted and deduplicated as ssh-keygen does.
      certificates: [
        {
          caPublicKey: CA_BLOB,
          serials: [9223372036854775807n, 77n, 1311768467294899695n, 4611686018427387904n, 77n],
        },
      ],
    });
    expect(krl.toString('hex')).toBe(SSH_KEYGEN_KRL.toString('hex'));
  });

  it('writes the PROTOCOL.krl header: magic, format 1, version, date, no flags, comment', () => {
    const parsed = header(
      encodeKrl({
        version: 7n,
        generatedAt: new Date('2030-01-02T03:04:05.678Z'),
        comment: 'hé',
        certificates: [],
      }),
    );
    expect(parsed).toEqual({
      magic: 'SSHKRL\n\0',
      formatVersion: 1,
      version: 7n,
      generatedDate: BigInt(Date.UTC(2030, 0, 2, 3, 4, 5) / 1000),
      flags: 0n,
      reserved: Buffer.alloc(0),
      comment: 'hé',
      rest: Buffer.alloc(0),
    });
  });

  it('writes one certificate section per CA and none for a CA without serials', () => {
    const otherCa = Buffer.concat([CA_BLOB.subarray(0, -1), Buffer.from([0])]);
    const { rest } = header(
      encodeKrl({
        version: 1n,
        generatedAt: new Date(0),
        comment: '',
        certificates: [
          { caPublicKey: CA_BLOB, serials: [5n] },
          { caPublicKey: Buffer.from('unused'), serials: [] },
          { caPublicKey: otherCa, serials: [6n, 7n] },
        ],
      }),
    );
    const sections: Array<{ ca: Buffer; serials: bigint[] }> = [];
    let offset = 0;
    while (offset < rest.length) {
      expect(rest[offset]).toBe(1); // KRL_SECTION_CERTIFICATES
      const body = rest.subarray(offset + 5, offset + 5 + rest.readUInt32BE(offset + 1));
      offset += 5 + body.length;
      const caLength = body.readUInt32BE(0);
      const ca = body.subarray(4, 4 + caLength);
      let at = 4 + caLength;
      expect(body.readUInt32BE(at)).toBe(0); // reserved
      at += 4;
      expect(body[at]).toBe(0x20); // KRL_SECTION_CERT_SERIAL_LIST
      const listLength = body.readUInt32BE(at + 1);
      const list = body.subarray(at + 5, at + 5 + listLength);
      expect(at + 5 + listLength).toBe(body.length);
      const serials = [];
      for (let index = 0; index < list.length; index += 8) serials.push(list.readBigUInt64BE(index));
      sections.push({ ca, serials });
    }
    expect(sections).toEqual([
      { ca: CA_BLOB, serials: [5n] },
      { ca: otherCa, serials: [6n, 7n] },
    ]);
  });

  it('refuses serials a KRL cannot hold and a section without its CA key', () => {
    const encode = (caPublicKey: Buffer, serials: bigint[]) =>
      encodeKrl({
        version: 1n,
        generatedAt: new Date(0),
        comment: '',
        certificates: [{ caPublicKey, serials }],
      });
    expect(() => encode(CA_BLOB, [0n])).toThrow('Serial 0 cannot be revoked');
    expect(() => encode(CA_BLOB, [1n << 64n])).toThrow('cannot be revoked');
    expect(() => encode(Buffer.alloc(0), [1n])).toThrow('needs its CA key');
  });
});

describe('decodeKrl', () => {
  const krl = (serials: bigint[], version = 1n) =>
    encodeKrl({
      version,
      generatedAt: new Date(1_700_000_000_000),
      comment: 'c',
      certificates: [{ caPublicKey: CA_BLOB, serials }],
    });

  it('reads a KRL made by ssh-keygen: header and one certificate section', () => {
    const decoded = decodeKrl(SSH_KEYGEN_KRL);
    expect(decoded.version).toBe(42n);
    expect(decoded.generatedAt).toEqual(SSH_KEYGEN_GENERATED_AT);
    expect(decoded.sections.map((section) => section.type)).toEqual([1]);
  });

  it('says two KRLs revoke the same when only version, date or comment differ', () => {
    expect(sameRevocations(decodeKrl(krl([5n], 1n)), decodeKrl(krl([5n], 2n)))).toBe(true);
    expect(sameRevocations(decodeKrl(krl([5n])), decodeKrl(krl([5n, 6n])))).toBe(false);
    expect(sameRevocations(decodeKrl(krl([])), decodeKrl(krl([5n])))).toBe(false);
  });

  it('refuses what is not a whole KRL: another format, a truncated or padded one', () => {
    const good = krl([5n]);
    expect(() => decodeKrl(Buffer.from('<html>502 Bad Gateway</html>'))).toThrow('Not a KRL');
    expect(() => decodeKrl(Buffer.alloc(0))).toThrow('Not a KRL');
    expect(() => decodeKrl(good.subarray(0, -1))).toThrow('truncated');
    expect(() => decodeKrl(Buffer.concat([good, Buffer.from([1])]))).toThrow('truncated');
    const otherFormat = Buffer.from(good);
    otherFormat.writeUInt32BE(2, 8);
    expect(() => decodeKrl(otherFormat)).toThrow('Unsupported KRL format 2');
  });
});
