// An OpenSSH key revocation list (KRL), written by hand: no npm library produces KRLs (sshpk reads and
// writes keys and certificates only), and the subset we need, serial lists per CA, is a few fixed fields.
// Format: OpenSSH PROTOCOL.krl. `ssh-keygen -Q -f <krl> <cert>` and sshd's RevokedKeys read it.

// "SSHKRL\n\0"
const KRL_MAGIC = Buffer.from('SSHKRL\n\0', 'latin1');
const KRL_FORMAT_VERSION = 1;
const KRL_SECTION_CERTIFICATES = 1;
const KRL_SECTION_CERT_SERIAL_LIST = 0x20;
const UINT64_MAX = (1n << 64n) - 1n;

/** The serials revoked for one CA; `caPublicKey` is the CA's public key blob in SSH wire format (RFC 4253). */
export interface KrlCertificateSection {
  caPublicKey: Buffer;
  serials: readonly bigint[];
}

/** What a KRL says: header fields, then one certificate section per CA. */
export interface KrlContents {
  /** Increases each time the list changes. */
  version: bigint;
  generatedAt: Date;
  comment: string;
  certificates: readonly KrlCertificateSection[];
}

/** Encodes a binary KRL holding KRL_SECTION_CERTIFICATES sections with serial lists (PROTOCOL.krl §1, §2.1). */
export function encodeKrl(contents: KrlContents): Buffer {
  const parts: Buffer[] = [
    KRL_MAGIC,
    uint32(KRL_FORMAT_VERSION),
    uint64(contents.version),
    uint64(BigInt(Math.floor(contents.generatedAt.getTime() / 1000))),
    uint64(0n), // flags: none are defined
    sshString(Buffer.alloc(0)), // reserved
    sshString(Buffer.from(contents.comment, 'utf8')),
  ];
  for (const section of contents.certificates) {
    // An empty CA key would mean "any CA" (PROTOCOL.krl §2): never what a list of our serials means.
    if (section.caPublicKey.length === 0) throw new Error('A KRL certificate section needs its CA key');
    // ssh-keygen refuses serial 0 and sorts its lists; sorted and deduplicated, equal lists give equal bytes.
    const serials = [...new Set(section.serials)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    if (serials.length === 0) continue;
    for (const serial of serials) {
      if (serial <= 0n || serial > UINT64_MAX) throw new Error(`Serial ${serial} cannot be revoked in a KRL`);
    }
    const serialList = Buffer.concat(serials.map(uint64));
    const body = Buffer.concat([
      sshString(section.caPublicKey),
      sshString(Buffer.alloc(0)), // reserved
      Buffer.from([KRL_SECTION_CERT_SERIAL_LIST]),
      sshString(serialList),
    ]);
    parts.push(Buffer.from([KRL_SECTION_CERTIFICATES]), sshString(body));
  }
  return Buffer.concat(parts);
}

function uint32(value: number): Buffer {
  const buffer = Buffer.alloc(4);
  buffer.writeUInt32BE(value);
  return buffer;
}

function uint64(value: bigint): Buffer {
  const buffer = Buffer.alloc(8);
  buffer.writeBigUInt64BE(value);
  return buffer;
}

/** An SSH `string`: uint32 length, then the bytes. */
function sshString(bytes: Buffer): Buffer {
  return Buffer.concat([uint32(bytes.length), bytes]);
}

/** A KRL read back: its header and its sections, each as type and raw data (PROTOCOL.krl §1). */
export interface DecodedKrl {
  version: bigint;
  generatedAt: Date;
  comment: string;
  sections: Array<{ type: number; data: Buffer }>;
}

/**
 * Reads a binary KRL's structure: magic, format version 1, header fields, then sections (byte type, string
 * data) that end exactly at the end of the buffer. Throws on anything else. It checks the framing only, not
 * what each section holds: enough to refuse an error page or a truncated download before sshd reads it.
 */
export function decodeKrl(krl: Buffer): DecodedKrl {
  let offset = 0;
  const take = (length: number): Buffer => {
    if (offset + length > krl.length) throw new Error(`Not a KRL: truncated at byte ${offset}`);
    return krl.subarray(offset, (offset += length));
  };
  const takeString = () => take(take(4).readUInt32BE());
  if (!take(KRL_MAGIC.length).equals(KRL_MAGIC)) throw new Error('Not a KRL: no "SSHKRL" magic');
  const formatVersion = take(4).readUInt32BE();
  if (formatVersion !== KRL_FORMAT_VERSION) throw new Error(`Unsupported KRL format ${formatVersion}`);
  const version = take(8).readBigUInt64BE();
  const generatedAt = new Date(Number(take(8).readBigUInt64BE()) * 1000);
  take(8); // flags
  takeString(); // reserved
  const comment = takeString().toString('utf8');
  const sections: DecodedKrl['sections'] = [];
  while (offset < krl.length) sections.push({ type: take(1)[0], data: takeString() });
  return { version, generatedAt, comment, sections };
}

/** Whether two KRLs revoke the same things: the same sections, whatever their version, date and comment. */
export function sameRevocations(a: DecodedKrl, b: DecodedKrl): boolean {
  return (
    a.sections.length === b.sections.length &&
    a.sections.every(
      (section, index) =>
        section.type === b.sections[index].type && section.data.equals(b.sections[index].data),
    )
  );
}
