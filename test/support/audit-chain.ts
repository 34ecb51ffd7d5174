// Builders for audit-export tests: real authenticators, real step-up challenges, real chain hashes. Nothing
// here is mocked except the database, and only where a test says so (memoryAuditSource).
import { generateKeyPairSync, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { decodeCBOR, decodePartialCBOR, type CBORType } from '@levischuck/tiny-cbor';
import type {
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
} from '@simplewebauthn/server';
import { chainHash, GENESIS_HASH, type ChainedEvent } from '../../libs/audit/chain.js';
import { Writable } from 'node:stream';
import { streamAuditExport, type AuditExportFilters, type AuditSource } from '../../libs/audit/export.js';
import {
  manifestSignerFromKey,
  type AuditPublicJwk,
  type ExportedEvent,
  type ExportFormat,
  type ManifestSigner,
} from '../../libs/audit/manifest.js';
import {
  newNonce,
  stepUpChallenge,
  subjectDigest,
  type RequestSubject,
  type StepUpAction,
} from '../../libs/webauthn/step-up-binding.js';
import { SoftAuthenticator, type CeremonyOverrides } from './soft-authenticator.js';

export const RP_ID = 'localhost';
export const ORIGIN = 'http://localhost:3000';

/** A person with one enrolled passkey; `publicKey` is the COSE key (base64url) as the broker stores it. */
export interface Approver {
  userId: string;
  username: string;
  authenticator: SoftAuthenticator;
  credentialId: string;
  publicKey: string;
}

/**
 * Registers a passkey and reads its COSE public key out of the attestation's authenticator data. `origin`
 * (rpId localhost) is where its assertions claim to come from: a live broker's PUBLIC_URL, for the bench.
 */
export function enrolApprover(
  username: string,
  userId: string = randomUUID(),
  origin: string = ORIGIN,
): Approver {
  const authenticator = new SoftAuthenticator({ origin });
  const options: PublicKeyCredentialCreationOptionsJSON = {
    rp: { id: RP_ID, name: 'JIT broker' },
    user: { id: Buffer.from(userId).toString('base64url'), name: username, displayName: username },
    challenge: randomBytes(32).toString('base64url'),
    pubKeyCredParams: [{ type: 'public-key', alg: -7 }],
  };
  const registration = authenticator.register(options);
  return {
    userId,
    username,
    authenticator,
    credentialId: registration.id,
    publicKey: coseKeyFromAttestation(registration.response.attestationObject).toString('base64url'),
  };
}

/** authData = rpIdHash(32) ‖ flags(1) ‖ signCount(4) ‖ aaguid(16) ‖ credIdLength(2) ‖ credId ‖ COSE key ‖ … */
export function coseKeyFromAttestation(attestationObject: string): Buffer {
  // Fresh Uint8Arrays: tiny-cbor ignores byteOffset, and Buffers may be slices of Node's shared pool.
  const attestation = decodeCBOR(new Uint8Array(Buffer.from(attestationObject, 'base64url'))) as Map<
    string,
    CBORType
  >;
  const authData = new Uint8Array(attestation.get('authData') as Uint8Array);
  const keyStart = 55 + new DataView(authData.buffer).getUint16(53);
  const [, length] = decodePartialCBOR(authData, keyStart);
  return Buffer.from(authData.subarray(keyStart, keyStart + length));
}

/** A genuine step-up assertion for (user, action, subject), as a decision event carries it in data.evidence. */
export function stepUpEvidence(
  approver: Approver,
  binding: { action: StepUpAction; subjectId: string; subjectDigest: string },
  overrides: CeremonyOverrides = {},
): Record<string, string> {
  const nonce = newNonce();
  const challenge = stepUpChallenge({ nonce, userId: approver.userId, ...binding }).toString('base64url');
  const options: PublicKeyCredentialRequestOptionsJSON = {
    challenge,
    rpId: RP_ID,
    allowCredentials: [{ id: approver.credentialId, type: 'public-key' }],
    userVerification: 'required',
  };
  const assertion = approver.authenticator.authenticate(options, overrides);
  return {
    userId: approver.userId,
    action: binding.action,
    subjectId: binding.subjectId,
    subjectDigest: binding.subjectDigest,
    nonce,
    credentialId: assertion.id,
    authenticatorData: assertion.response.authenticatorData,
    clientDataJSON: assertion.response.clientDataJSON,
    signature: assertion.response.signature,
    publicKey: approver.publicKey,
  };
}

/** What appendAuditEvent takes, plus an optional time. */
export interface SyntheticInput {
  actorId: string;
  action: string;
  subjectType: string;
  subjectId: string;
  requestId?: string | null;
  data?: Record<string, unknown>;
  at?: string;
}

/** An in-memory hash chain built exactly as appendAuditEvent builds it. */
export class SyntheticChain {
  readonly events: ExportedEvent[] = [];
  private clock = Date.UTC(2026, 2, 1, 9, 0, 0);

  append(input: SyntheticInput): ExportedEvent {
    const previous = this.events.at(-1);
    const prevHash = previous ? Buffer.from(previous.hash, 'hex') : GENESIS_HASH;
    this.clock += 1000;
    const body: ChainedEvent = {
      seq: this.events.length + 1,
      at: input.at ?? new Date(this.clock).toISOString(),
      actorId: input.actorId,
      action: input.action,
      subjectType: input.subjectType,
      subjectId: input.subjectId,
      requestId: input.requestId ?? null,
      data: input.data ?? {},
      prevHash: prevHash.toString('hex'),
    };
    const event = { ...body, hash: chainHash(prevHash, body).toString('hex') };
    this.events.push(event);
    return event;
  }

  get head(): { seq: number; hash: string } {
    const last = this.events.at(-1);
    return { seq: last?.seq ?? 0, hash: last?.hash ?? GENESIS_HASH.toString('hex') };
  }
}

/** A request subject as the broker commits it in request.created. */
export function requestSubjectOf(
  requesterId: string,
  overrides: Partial<RequestSubject> = {},
): RequestSubject {
  return {
    id: randomUUID(),
    requesterId,
    entitlementId: 'prod-db-write',
    policyHash: 'a'.repeat(64),
    scope: { grantRoles: ['app_rw'] },
    durationSeconds: 3600,
    justification: 'CHG-7: fix "stuck" orders, then rebuild\nthe index',
    ticket: 'CHG-7',
    notBefore: null,
    breakGlass: false,
    extendsRequestId: null,
    sshPublicKey: null,
    ...overrides,
  };
}

/** A realistic stretch of chain: two requests, approvals and a deny with evidence, an activation, a revocation. */
export interface Scenario {
  chain: SyntheticChain;
  requester: Approver;
  alice: Approver;
  bob: Approver;
  approved: RequestSubject;
  denied: RequestSubject;
}

/**
 * Builds the Scenario. `tamper` may rewrite an event before it is hashed (a broker that recorded a lie, or an
 * attacker who rebuilt the chain from there); `subject` overrides fields of both requests' subjects.
 */
export function buildScenario(
  tamper: (input: SyntheticInput, index: number, scenario: Scenario) => SyntheticInput = (input) => input,
  subject: Partial<RequestSubject> = {},
): Scenario {
  const requester = enrolApprover('carol');
  const alice = enrolApprover('alice');
  const bob = enrolApprover('bob');
  const chain = new SyntheticChain();
  const approved = requestSubjectOf(requester.userId, subject);
  const denied = requestSubjectOf(requester.userId, {
    entitlementId: 'billing-read',
    ticket: null,
    ...subject,
  });
  const scenario: Scenario = { chain, requester, alice, bob, approved, denied };
  let index = 0;
  const append = (input: SyntheticInput) => chain.append(tamper(input, index++, scenario));
  const created = (subject: RequestSubject) =>
    append({
      actorId: requester.userId,
      action: 'request.created',
      subjectType: 'request',
      subjectId: subject.id,
      requestId: subject.id,
      data: { requester: 'carol', subject, approvalsRequired: 2 },
    });
  const decision = (
    approver: Approver,
    subject: RequestSubject,
    action: 'approve' | 'deny',
    comment: string,
  ) =>
    append({
      actorId: approver.userId,
      action: 'approval.recorded',
      subjectType: 'request',
      subjectId: subject.id,
      requestId: subject.id,
      data: {
        approver: approver.username,
        decision: action,
        comment,
        evidence: stepUpEvidence(approver, {
          action,
          subjectId: subject.id,
          subjectDigest: subjectDigest(subject),
        }),
      },
    });

  append({
    actorId: 'system',
    action: 'policy.loaded',
    subjectType: 'policy',
    subjectId: 'policy',
    data: {},
  });
  created(approved);
  decision(alice, approved, 'approve', 'ok, "looks fine", go');
  created(denied);
  decision(bob, approved, 'approve', 'second approval');
  append({
    actorId: bob.userId,
    action: 'request.approved',
    subjectType: 'request',
    subjectId: approved.id,
    requestId: approved.id,
    data: {},
  });
  decision(alice, denied, 'deny', 'no ticket,\r\nno access');
  const grantId = randomUUID();
  append({
    actorId: requester.userId,
    action: 'request.activated',
    subjectType: 'request',
    subjectId: approved.id,
    requestId: approved.id,
    data: {
      grantId,
      evidence: stepUpEvidence(requester, {
        action: 'activate',
        subjectId: approved.id,
        subjectDigest: subjectDigest(approved),
      }),
    },
  });
  append({
    actorId: 'system',
    action: 'grant.revoked',
    subjectType: 'grant',
    subjectId: grantId,
    requestId: approved.id,
    data: { reason: 'expired', lagMs: 412 },
  });
  return scenario;
}

/** An Ed25519 audit key as SigningKeyStore would hold it, with its signer and public JWKS. */
export function auditKey(kid: string = `audit-${randomUUID()}`): {
  kid: string;
  privateKey: KeyObject;
  signManifest: ReturnType<typeof manifestSignerFromKey>;
  jwks: AuditPublicJwk[];
} {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const jwk = publicKey.export({ format: 'jwk' });
  return {
    kid,
    privateKey,
    signManifest: manifestSignerFromKey(kid, privateKey),
    jwks: [{ kty: 'OKP', crv: 'Ed25519', x: String(jwk.x), kid, alg: 'EdDSA', use: 'sig' }],
  };
}

/**
 * An in-memory stand-in for PostgreSQL that answers exactly the two statements the exporter sends (the chain
 * head, and keyset pages over audit_events with the simple filters), and refuses anything else. Rows come back
 * typed as pg returns them. The real cursor reading is proven against PostgreSQL in test/e2e/audit-export.e2e.ts.
 */
export function memoryAuditSource(
  events: readonly ExportedEvent[],
  options: { headSeq?: number; now?: Date; entitlementOf?: (requestId: string) => string | undefined } = {},
): { source: AuditSource; calls: Array<{ sql: string; parameters: unknown[] }> } {
  const calls: Array<{ sql: string; parameters: unknown[] }> = [];
  const source = async (sql: string, parameters: unknown[]) => {
    calls.push({ sql, parameters });
    if (/FROM audit_chain_head WHERE id = 1/.test(sql)) {
      const headSeq = options.headSeq ?? events.length;
      const head = events.find((event) => event.seq === headSeq);
      return [
        {
          seq: String(headSeq),
          hash: head ? Buffer.from(head.hash, 'hex') : Buffer.alloc(32),
          now: options.now ?? new Date('2026-03-02T10:00:00.000Z'),
        },
      ];
    }
    const page =
      /FROM audit_events\s+WHERE seq > \$1 AND seq <= \$2((?: AND [^\n]+)?)\s+ORDER BY seq\s+LIMIT \$(\d+)$/.exec(
        sql,
      );
    if (!page) throw new Error(`memoryAuditSource cannot answer: ${sql}`);
    const [after, head] = parameters as [number, number];
    const limit = parameters[Number(page[2]) - 1] as number;
    const conditions = page[1]
      .split(' AND ')
      .filter((condition) => condition.trim() !== '')
      .map((condition) => {
        const match =
          /^(at >=|at <|actor_id =|action =|request_id =|request_id IN \(SELECT id FROM elevation_requests WHERE entitlement_id =) \$(\d+)\)?$/.exec(
            condition.trim(),
          );
        if (!match) throw new Error(`memoryAuditSource cannot evaluate: ${condition}`);
        const value = parameters[Number(match[2]) - 1];
        return (event: ExportedEvent): boolean => {
          switch (match[1]) {
            case 'at >=':
              return Date.parse(event.at) >= (value as Date).getTime();
            case 'at <':
              return Date.parse(event.at) < (value as Date).getTime();
            case 'actor_id =':
              return event.actorId === value;
            case 'action =':
              return event.action === value;
            case 'request_id =':
              return event.requestId === value;
            default:
              return event.requestId !== null && options.entitlementOf?.(event.requestId) === value;
          }
        };
      });
    return events
      .filter((event) => event.seq > after && event.seq <= head)
      .filter((event) => conditions.every((condition) => condition(event)))
      .slice(0, limit)
      .map((event) => ({
        seq: String(event.seq),
        at: new Date(event.at),
        actorId: event.actorId,
        action: event.action,
        subjectType: event.subjectType,
        subjectId: event.subjectId,
        requestId: event.requestId,
        data: JSON.parse(JSON.stringify(event.data)) as Record<string, unknown>, // as pg parses jsonb
        prevHash: Buffer.from(event.prevHash, 'hex'),
        hash: Buffer.from(event.hash, 'hex'),
      }));
  };
  return { source, calls };
}

/** Anything with pg's `query(text)`: a Pool or a Client. */
interface Queryable {
  query(text: string): Promise<{ rows: Record<string, unknown>[] }>;
}

/** Every stored audit event in seq order, shaped as exported (times ISO, hashes hex), for verifyChain. */
export async function storedChain(db: Queryable): Promise<ExportedEvent[]> {
  const { rows } = await db.query(
    `SELECT seq::int AS seq, at, actor_id AS "actorId", action, subject_type AS "subjectType",
            subject_id AS "subjectId", request_id AS "requestId", data, prev_hash AS "prevHash", hash
       FROM audit_events ORDER BY seq`,
  );
  return rows.map((row) => ({
    ...(row as unknown as ExportedEvent),
    at: (row.at as Date).toISOString(),
    prevHash: (row.prevHash as Buffer).toString('hex'),
    hash: (row.hash as Buffer).toString('hex'),
  }));
}

/** What an export of `events` signed with `signManifest` reads as (streamAuditExport into a string). */
export async function exportedText(
  events: readonly ExportedEvent[],
  format: ExportFormat,
  signManifest: ManifestSigner,
  options: { filters?: AuditExportFilters; origins?: string[] } = {},
): Promise<string> {
  let text = '';
  const out = new Writable({
    decodeStrings: false,
    write(chunk: string, _encoding, callback) {
      text += chunk;
      callback();
    },
  });
  await streamAuditExport({
    source: memoryAuditSource(events).source,
    format,
    out,
    signManifest,
    exporter: 'auditor-1',
    rpId: RP_ID,
    origins: options.origins ?? [ORIGIN],
    filters: options.filters,
  });
  return text;
}
