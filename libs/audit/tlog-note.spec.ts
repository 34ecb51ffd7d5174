import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import {
  addSignatureLines,
  cosignatureLine,
  ed25519PrivateKey,
  formatCheckpoint,
  formatVkey,
  noteVerifier,
  parseCheckpoint,
  parseVkey,
  signNote,
  verifyNote,
} from './tlog-note.js';

// golang.org/x/mod/sumdb/note, note_test.go and its package documentation: a key, a text and the note it
// signs (Ed25519 signatures are deterministic, so the bytes must match).
const PETER_SKEY_MATERIAL = 'AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz';
const PETER_VKEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const PETER_TEXT =
  "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const PETER_NOTE = `${PETER_TEXT}\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n`;
// A cosigner vkey (type 0x04) of transparency-dev/formats note tests, and the checkpoint of C2SP's example.
const COSIGNER_VKEY = 'remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2';
const SOFA = 'example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n';

const peterKey = () => ed25519PrivateKey(Buffer.from(PETER_SKEY_MATERIAL, 'base64').subarray(1));

describe('C2SP signed notes, checkpoints and cosignatures', () => {
  it('signs the sumdb/note reference text byte for byte and verifies it with the published vkey', () => {
    expect(signNote(PETER_TEXT, 'PeterNeumann', peterKey())).toBe(PETER_NOTE);
    const verifier = parseVkey(PETER_VKEY);
    expect(formatVkey(verifier)).toBe(PETER_VKEY);
    expect(verifyNote(PETER_NOTE, [verifier])).toEqual({
      text: PETER_TEXT,
      signedBy: ['PeterNeumann'],
      cosignedBy: [],
    });
  });

  it('parses published vkeys of both types and refuses a key ID that does not match', () => {
    expect(formatVkey(parseVkey(COSIGNER_VKEY))).toBe(COSIGNER_VKEY);
    expect(() => parseVkey(PETER_VKEY.replace('c74f20a3', 'c74f20a4'))).toThrow(/key ID/);
    expect(() => parseVkey('Peter Neumann+c74f20a3+ARpc')).toThrow(/key name|malformed/);
  });

  it('round-trips the C2SP example checkpoint and refuses malformed ones', () => {
    const checkpoint = parseCheckpoint(SOFA);
    expect(checkpoint).toMatchObject({
      origin: 'example.com/behind-the-sofa',
      size: 20852163,
      extensions: [],
    });
    expect(formatCheckpoint(checkpoint)).toBe(SOFA);
    for (const bad of [
      SOFA.slice(0, -1),
      SOFA.replace('20852163', '020852163'),
      SOFA.replace('Cs', 'C$'),
      'x\n1\n',
    ]) {
      expect(() => parseCheckpoint(bad)).toThrow();
    }
  });

  it('verifies a witness cosignature/v1 and refuses a changed checkpoint or signature', () => {
    const { privateKey: witness } = generateKeyPairSync('ed25519');
    const { privateKey: log } = generateKeyPairSync('ed25519');
    const note = signNote(SOFA, 'example.com/behind-the-sofa', log);
    const cosigned = addSignatureLines(note, [
      cosignatureLine(SOFA, 'witness.example/w1', witness, 1679315147),
    ]);
    const verifiers = [
      noteVerifier('example.com/behind-the-sofa', log),
      noteVerifier('witness.example/w1', witness, 0x04),
    ];
    expect(verifyNote(cosigned, verifiers)).toEqual({
      text: SOFA,
      signedBy: ['example.com/behind-the-sofa'],
      cosignedBy: [{ name: 'witness.example/w1', timestamp: 1679315147 }],
    });
    // Unknown signers are ignored; a known one that does not verify fails the note.
    expect(verifyNote(cosigned, [verifiers[0]]).cosignedBy).toEqual([]);
    expect(() => verifyNote(cosigned.replace('20852163', '20852164'), verifiers)).toThrow(/does not verify/);
    const lines = cosigned.split('\n');
    const last = lines.length - 2;
    lines[last] = lines[last].slice(0, -6) + (lines[last].endsWith('AAAA==') ? 'BBBB==' : 'AAAA==');
    expect(() => verifyNote(lines.join('\n'), verifiers)).toThrow(/does not verify|malformed/);
    expect(() => verifyNote(SOFA, verifiers)).toThrow(/blank line/);
  });
});
