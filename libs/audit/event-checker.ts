// Checks the events of an export or bundle one at a time, in file order: the hash chain, the manifest's filters,
// the request subjects, the step-up evidence and the signed checkpoints. Reading the file and the manifest
// signature are verify.ts's; this holds what every format shares once an event is parsed.
import { createHash, type JsonWebKey } from 'node:crypto';
import { subjectDigest, type StepUpAction } from '../webauthn/step-up-binding.js';
import { AuditAction } from './audit-actions.js';
import { DeferredAssertions } from './assertion-pool.js';
import { chainHash, GENESIS_HASH, type ChainedEvent } from './chain.js';
import { checkpointSignatureValid, parseCheckpointData } from './checkpoint.js';
import {
  assertionSignatureFailure,
  assertionSignatureHolds,
  parseStepUpEvidence,
  prepareStepUpAssertion,
} from './evidence-check.js';
import { EXPORT_COLUMNS, EventsDigest, type ExportedEvent, type ExportManifest } from './manifest.js';

/** What a successful verification covered. */
export interface VerifyCounts {
  events: number;
  /** approval.recorded events (each with a verified assertion). */
  approvals: number;
  /** Step-up assertions verified (approvals, activations, any other event carrying evidence). */
  assertions: number;
  /** request.created events whose subject the later decisions' digests were checked against. */
  requests: number;
  /** audit.checkpoint events whose signed chain head was checked. */
  checkpoints: number;
}

/** The first thing that does not hold: the seq of the event where it broke, or null for the file or manifest. */
export interface VerifyFailure {
  ok: false;
  seq: number | null;
  reason: string;
}

export const HEX_32 = /^[0-9a-f]{64}$/;
/** Step-up actions on a stored request: their subjectId is the request id, their digest covers its subject. */
const REQUEST_ACTIONS: ReadonlySet<string> = new Set<StepUpAction>(['approve', 'deny', 'activate', 'revoke']);
/** The step-up actions a decision event may carry; other events carrying evidence are checked, not matched. */
const EVIDENCE_ACTIONS: ReadonlyMap<string, readonly StepUpAction[]> = new Map([
  [AuditAction.ApprovalRecorded, ['approve', 'deny']],
  [AuditAction.RequestActivated, ['activate', 'break-glass']],
]);

/** How assertion signatures are checked: on `threads` worker threads in batches of `batch`, or inline (0). */
export interface AssertionThreads {
  threads: number;
  batch: number;
}

/**
 * Checks events one at a time, in file order, against the chain rules, the manifest's filters and the evidence
 * rules. With threads, assertion signatures are checked in batches on worker threads while reading goes on:
 * event() then answers only the other checks, and a caller reports a failure through firstFailure(), which
 * waits for the signatures before it and names the earliest failing event, exactly as checking inline would.
 */
export class ExportChecker {
  readonly counts: VerifyCounts = { events: 0, approvals: 0, assertions: 0, requests: 0, checkpoints: 0 };
  private previous: { seq: number; hash: Buffer } | null = null;
  private firstSeq: number | null = null;
  private readonly digest = new EventsDigest();
  /** Request id → the digest of its request.created subject (and what the entitlement filter needs). */
  private readonly subjects = new Map<
    string,
    { digest: string; entitlementId: unknown; seq: number; actorId: string; workloadId: string | null }
  >();
  /** Credential id → its COSE public key: one credential never has two keys. */
  private readonly credentialKeys = new Map<string, string>();
  /** An unfiltered export holds the whole chain: seq 1 to the chain head, nothing missing. */
  private readonly complete: boolean;

  /** Null when signatures are checked inline. */
  private readonly deferred: DeferredAssertions | null;

  constructor(
    private readonly manifest: ExportManifest,
    /** The pinned audit keys, when given: checkpoints are checked against them like the manifest. */
    private readonly jwks?: readonly JsonWebKey[],
    threads: AssertionThreads = { threads: 0, batch: 1 },
  ) {
    this.complete = Object.keys(manifest.filters).length === 0;
    this.deferred =
      threads.threads > 0
        ? new DeferredAssertions(threads.threads, threads.batch, (prepared) =>
            assertionSignatureFailure(prepared.alg),
          )
        : null;
  }

  /** Signature checks are running behind: wait for relieve() before reading on. */
  get backlogged(): boolean {
    return this.deferred?.backlogged ?? false;
  }

  /** Waits for the oldest signature checks; a failure among them is the verification's answer. */
  async relieve(): Promise<VerifyFailure | null> {
    const failed = await this.deferred?.relieve();
    return failed ? failure(failed.seq, failed.reason) : null;
  }

  /** The answer when `broken` was found: an earlier event's failed signature check, else `broken`. */
  async firstFailure(broken: VerifyFailure): Promise<VerifyFailure> {
    const failed = await this.deferred?.settle();
    return failed ? failure(failed.seq, failed.reason) : broken;
  }

  /** Stops the signature threads, if any were started. */
  async close(): Promise<void> {
    await this.deferred?.close();
  }

  subjectOf(requestId: string): { digest: string; seq: number } | undefined {
    return this.subjects.get(requestId);
  }

  /**
   * Checks the next event in file order; null when it holds (its signature, with threads, may still fail).
   * `canonicalText`, when given, is the JCS text of `value` as the caller has already verified it: the hash
   * input is then cut from it instead of being serialised again.
   */
  event(value: unknown, where: string, canonicalText?: string): VerifyFailure | null {
    const event = parseEvent(value);
    if (typeof event === 'string') {
      const seq = isRecord(value) && Number.isSafeInteger(value.seq) ? (value.seq as number) : null;
      return failure(seq, `${where}: ${event}`);
    }
    const { seq } = event;
    const previous = this.previous;
    if (previous !== null && seq <= previous.seq) {
      return failure(
        seq,
        `seq ${seq} comes after seq ${previous.seq}: events must be in increasing seq order`,
      );
    }
    if (this.complete) {
      const expected = previous === null ? 1 : previous.seq + 1;
      if (seq !== expected)
        return failure(
          seq,
          `expected seq ${expected}, found ${seq} (an unfiltered export holds every event)`,
        );
    }
    const prevHash = Buffer.from(event.prevHash, 'hex');
    if (seq === 1 && !prevHash.equals(GENESIS_HASH))
      return failure(seq, 'the first event of the chain has a non-zero prevHash');
    if (previous !== null && seq === previous.seq + 1 && !prevHash.equals(previous.hash)) {
      return failure(seq, 'prevHash does not match the previous event');
    }
    const { hash } = event;
    const recomputed = recomputeHash(prevHash, event, canonicalText);
    if (recomputed.toString('hex') !== hash) return failure(seq, 'hash does not match the event content');
    const outside = this.outsideFilters(event);
    if (outside) return failure(seq, `the event does not match the export's filter ${outside}`);
    const broken = this.checkSubjectAndEvidence(event) ?? this.checkCheckpoint(event);
    if (broken) return failure(seq, broken);

    this.previous = { seq, hash: recomputed };
    this.firstSeq ??= seq;
    this.digest.add(hash);
    this.counts.events++;
    return null;
  }

  /** After the last event: every signature checked, then the manifest's totals against what the file held. */
  async finish(): Promise<VerifyFailure | null> {
    const failed = await this.deferred?.settle();
    if (failed) return failure(failed.seq, failed.reason);
    const { manifest, counts } = this;
    const lastSeq = this.previous?.seq ?? null;
    const lastHash = this.previous?.hash.toString('hex') ?? null;
    if (manifest.count !== counts.events) {
      return failure(null, `the manifest counts ${manifest.count} events, the file holds ${counts.events}`);
    }
    if (manifest.firstSeq !== this.firstSeq || manifest.lastSeq !== lastSeq) {
      return failure(
        null,
        `the manifest says seq ${manifest.firstSeq}..${manifest.lastSeq}, the file holds ${this.firstSeq}..${lastSeq}`,
      );
    }
    if (manifest.lastHash !== lastHash)
      return failure(lastSeq, 'the manifest lastHash is not the hash of the last event');
    if (manifest.eventsDigest !== this.digest.hex()) {
      return failure(
        null,
        'eventsDigest does not match the events in the file: one was removed, added, replaced or moved',
      );
    }
    const headSeq = manifest.chainHead.seq;
    if (lastSeq !== null && lastSeq > headSeq)
      return failure(lastSeq, 'the export holds an event after its chain head');
    if (lastSeq === headSeq && lastHash !== manifest.chainHead.hash) {
      return failure(lastSeq, 'the last event is the chain head but its hash is not the head hash');
    }
    if (this.complete && (lastSeq ?? 0) !== headSeq) {
      return failure(
        null,
        `an unfiltered export must end at the chain head (seq ${headSeq}), this one ends at ${lastSeq ?? 'no event'}`,
      );
    }
    return null;
  }

  private outsideFilters(event: ExportedEvent): string | null {
    const { filters } = this.manifest;
    if (filters.actorId !== undefined && event.actorId !== filters.actorId) return 'actorId';
    if (filters.action !== undefined && event.action !== filters.action) return 'action';
    if (filters.requestId !== undefined && event.requestId !== filters.requestId) return 'requestId';
    const at = Date.parse(event.at);
    if (filters.from !== undefined && !(at >= Date.parse(filters.from))) return 'from';
    if (filters.to !== undefined && !(at < Date.parse(filters.to))) return 'to';
    if (filters.entitlementId !== undefined) {
      const subject = event.requestId === null ? undefined : this.subjects.get(event.requestId);
      const created =
        event.action === AuditAction.RequestCreated && isRecord(event.data.subject)
          ? event.data.subject
          : undefined;
      const entitlementId = created?.entitlementId ?? subject?.entitlementId;
      if (
        event.requestId === null ||
        (entitlementId !== undefined && entitlementId !== filters.entitlementId)
      ) {
        return 'entitlementId';
      }
    }
    return null;
  }

  /**
   * An audit.checkpoint signs the chain head just before its own event: its seq is the previous seq, its hash
   * the event's prevHash (so, when that event is in the file, its hash), and the signature is the audit key's.
   */
  private checkCheckpoint(event: ExportedEvent): string | null {
    if (event.action !== AuditAction.AuditCheckpoint) return null;
    const checkpoint = parseCheckpointData(event.data);
    if (typeof checkpoint === 'string') return checkpoint;
    if (checkpoint.seq !== event.seq - 1) {
      return `the checkpoint covers seq ${checkpoint.seq}, not the event before it (seq ${event.seq - 1})`;
    }
    if (checkpoint.hash !== event.prevHash)
      return 'the checkpoint hash is not the hash of the event before it (prevHash)';
    const { manifest } = this;
    const jwk =
      this.jwks !== undefined
        ? this.jwks.find((key) => key.kid === checkpoint.kid)
        : checkpoint.kid === manifest.kid
          ? manifest.publicJwk
          : undefined;
    if (jwk === undefined) {
      return this.jwks !== undefined
        ? `the checkpoint is signed by key ${JSON.stringify(checkpoint.kid)}, which is not among the pinned keys`
        : `the checkpoint is signed by key ${JSON.stringify(checkpoint.kid)}, not the manifest's: verify with the broker audit JWKS (--jwks)`;
    }
    if (!checkpointSignatureValid(checkpoint, jwk)) {
      return `the checkpoint signature does not verify with key ${JSON.stringify(checkpoint.kid)}`;
    }
    this.counts.checkpoints++;
    return null;
  }

  /**
   * A request.activated without a step-up must name the workload whose token activated it (issue 21), the
   * same workload, and the same actor, that filed the request when its request.created is in the file.
   */
  private workloadActivation(event: ExportedEvent): string | null {
    const { workload } = event.data;
    if (!isRecord(workload) || typeof workload.id !== 'string')
      return 'request.activated carries neither step-up evidence nor the workload that activated it';
    const created = this.subjects.get(event.subjectId);
    if (created === undefined) return null;
    if (created.workloadId !== workload.id || created.actorId !== event.actorId)
      return `request.activated names workload ${JSON.stringify(workload.id)}, which did not file the request (seq ${created.seq})`;
    return null;
  }

  private checkSubjectAndEvidence(event: ExportedEvent): string | null {
    const { data } = event;
    if (event.action === AuditAction.RequestCreated && data.subject !== undefined) {
      const subject = data.subject;
      if (!isRecord(subject) || subject.id !== event.subjectId)
        return 'request.created subject.id is not the event subjectId';
      let digest: string;
      try {
        digest = subjectDigest(subject);
      } catch (error) {
        return `request.created subject is not plain JSON: ${(error as Error).message}`;
      }
      const workloadId = isRecord(data.workload) ? String(data.workload.id) : null;
      const { entitlementId } = subject;
      this.subjects.set(event.subjectId, {
        digest,
        entitlementId,
        seq: event.seq,
        actorId: event.actorId,
        workloadId,
      });
      this.counts.requests++;
    }
    if (data.evidence === undefined) {
      if (event.action === AuditAction.ApprovalRecorded)
        return 'approval.recorded carries no step-up evidence';
      return event.action === AuditAction.RequestActivated ? this.workloadActivation(event) : null;
    }
    const evidence = parseStepUpEvidence(data.evidence);
    if (typeof evidence === 'string') return evidence;
    if (evidence.userId !== event.actorId) return "evidence.userId is not the event's actorId";
    const fitting = EVIDENCE_ACTIONS.get(event.action);
    if (fitting !== undefined && !fitting.includes(evidence.action)) {
      return `evidence.action ${JSON.stringify(evidence.action)} does not authorise ${event.action}`;
    }
    if (
      event.action === AuditAction.ApprovalRecorded &&
      data.decision !== undefined &&
      data.decision !== evidence.action
    ) {
      return 'evidence.action is not the recorded decision';
    }
    if (REQUEST_ACTIONS.has(evidence.action)) {
      if (evidence.subjectId !== event.subjectId)
        return 'evidence.subjectId is not the request this event records';
      const created = this.subjects.get(evidence.subjectId);
      if (created !== undefined && created.digest !== evidence.subjectDigest) {
        return `evidence.subjectDigest is not the digest of the request subject committed at seq ${created.seq}`;
      }
    }
    const knownKey = this.credentialKeys.get(evidence.credentialId);
    if (knownKey !== undefined && knownKey !== evidence.publicKey) {
      return 'evidence.publicKey differs from the key this credential signed with earlier in the file';
    }
    const prepared = prepareStepUpAssertion(evidence, this.manifest);
    if (typeof prepared === 'string') return prepared;
    // Deferred: the state below is updated as if it held; if it does not, firstFailure() names this event
    // before anything found later, so nothing that state decided is ever reported.
    if (this.deferred !== null) this.deferred.add(event.seq, prepared);
    else if (!assertionSignatureHolds(prepared)) return assertionSignatureFailure(prepared.alg);
    this.credentialKeys.set(evidence.credentialId, evidence.publicKey);
    this.counts.assertions++;
    if (event.action === AuditAction.ApprovalRecorded) this.counts.approvals++;
    return null;
  }
}

/**
 * sha256(prevHash ‖ JCS(event without hash)). From the event's verified JCS text when given: the top-level
 * `,"hash":"…"` member is its last occurrence (a string value holds `"` only escaped, so no `,"hash":"` inside
 * one; data's members come before it), and the text without it is the JCS of the rest.
 */
function recomputeHash(prevHash: Buffer, event: ExportedEvent, canonicalText: string | undefined): Buffer {
  const member = `,"hash":"${event.hash}"`;
  const at = canonicalText === undefined ? -1 : canonicalText.lastIndexOf(member);
  if (canonicalText === undefined || at === -1) {
    const { hash: _hash, ...body } = event;
    return chainHash(prevHash, body);
  }
  return createHash('sha256')
    .update(prevHash)
    .update(canonicalText.slice(0, at), 'utf8')
    .update(canonicalText.slice(at + member.length), 'utf8')
    .digest();
}

function parseEvent(value: unknown): ExportedEvent | string {
  if (!isRecord(value)) return 'not an event object';
  const extra = Object.keys(value).filter((key) => !(EXPORT_COLUMNS as readonly string[]).includes(key));
  if (extra.length > 0) return `unexpected field(s) ${extra.join(', ')}`;
  const { seq, at, actorId, action, subjectType, subjectId, requestId, data, prevHash, hash } = value;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1)
    return 'seq is not a positive integer';
  for (const [name, field] of Object.entries({ at, actorId, action, subjectType, subjectId })) {
    if (typeof field !== 'string') return `${name} is not a string`;
  }
  if (requestId !== null && typeof requestId !== 'string') return 'requestId is neither a string nor null';
  if (!isRecord(data)) return 'data is not an object';
  if (typeof prevHash !== 'string' || !HEX_32.test(prevHash))
    return 'prevHash is not 64 lowercase hex digits';
  if (typeof hash !== 'string' || !HEX_32.test(hash)) return 'hash is not 64 lowercase hex digits';
  return value as unknown as ChainedEvent & { hash: string };
}

/** A JSON object (not an array, not null). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function failure(seq: number | null, reason: string): VerifyFailure {
  return { ok: false, seq, reason };
}
