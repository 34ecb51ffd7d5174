import { Inject, Injectable, Logger } from '@nestjs/common';
import type { Writable } from 'node:stream';
import { DataSource } from 'typeorm';
import { AuditAction } from '../../../libs/audit/audit-actions.js';
import { appendAuditEvent, toChainedEvent } from '../../../libs/audit/audit-log.js';
import { authenticatorNamesOf, userIdOf, usernamesOf } from '../../../libs/audit/audit-names.js';
import { buildRequestBundle, type BundleSigning, type RequestBundle } from '../../../libs/audit/bundle.js';
import type { BundleTransparency } from '../../../libs/audit/bundle-transparency.js';
import { inclusionOf, issueCheckpoint, logOriginOf } from '../../../libs/audit/merkle-log.js';
import {
  auditPageQuery,
  normaliseAuditFilters,
  rowsOf,
  signAuditManifest,
  streamAuditExport,
  type AuditExportFilters,
  type AuditSource,
} from '../../../libs/audit/export.js';
import { requestChain, type RequestChain } from '../../../libs/audit/request-chain.js';
import type {
  ExportedEvent,
  ExportFilters,
  ExportFormat,
  ExportManifest,
  ManifestSigner,
} from '../../../libs/audit/manifest.js';
import { APP_CONFIG, type AppConfig } from '../../../libs/config/config.js';
import type { AuditEventEntity } from '../../../libs/db/index.js';
import { DomainError, ErrorCode } from '../../../libs/domain/errors.js';
import type { Actor } from '../../../libs/domain/actor.js';
import { ConnectorRegistry } from '../../../libs/elevation/connector-registry.js';
import { StepUpService, type StepUpProof } from '../../../libs/identity/step-up.service.js';
import { evidenceForAudit, type StepUpEvidence } from '../../../libs/webauthn/evidence.js';

/** No upper bound on seq for the event list: a page is read as it stands. */
const NO_HEAD = Number.MAX_SAFE_INTEGER;

/** A page of GET /api/audit/events, with usernames for its actors and the id the `actor` filter named. */
export interface AuditEventPage {
  items: ExportedEvent[];
  nextCursor: string | null;
  usernames: Record<string, string>;
  actorId: string | null;
}

/** What a client asks to export: the body of POST /api/audit/export. */
export interface AuditExportCall {
  format: ExportFormat;
  filters?: AuditExportFilters;
  stepUp?: StepUpProof;
}

/** What the export's audit event records about the call. */
interface ExportCallRecord {
  format: ExportFormat;
  filters: ExportFilters;
  params: Record<string, unknown>;
}

/**
 * Reading the audit trail for people (DESIGN §9, §10): the event list, the signed export that audits itself,
 * one request's signed bundle, and the public audit keys. The HTTP shape stays in AuditController.
 */
@Injectable()
export class AuditExportService {
  private readonly logger = new Logger(AuditExportService.name);

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly dataSource: DataSource,
    private readonly connectors: ConnectorRegistry,
    private readonly stepUp: StepUpService,
  ) {}

  /**
   * One page of events as exported, in seq order after `afterSeq`; the cursor is the last seq of the page.
   * `username` filters by a person's name (refused with actorId, or when nobody has it).
   */
  async events(
    filters: AuditExportFilters,
    page: { afterSeq: number; limit: number },
    username?: string,
  ): Promise<AuditEventPage> {
    let actorId = filters.actorId;
    if (username !== undefined) {
      if (actorId !== undefined)
        throw new DomainError(ErrorCode.VALIDATION_FAILED, 'Give actor or actorId, not both');
      actorId = (await userIdOf(this.dataSource, username)) ?? undefined;
      if (actorId === undefined)
        throw new DomainError(ErrorCode.VALIDATION_FAILED, `No user named ${username}`);
    }
    const { text, values } = auditPageQuery(
      normaliseAuditFilters({ ...filters, ...(actorId === undefined ? {} : { actorId }) }),
      page.afterSeq,
      NO_HEAD,
      page.limit + 1,
    );
    const rows = rowsOf(await this.dataSource.query(text, values)) as AuditEventEntity[];
    const items = rows.slice(0, page.limit).map(toChainedEvent);
    const usernames = await usernamesOf(
      this.dataSource,
      items.map((item) => item.actorId),
    );
    return {
      items,
      nextCursor: rows.length > page.limit ? String(items[items.length - 1].seq) : null,
      usernames: Object.fromEntries(usernames),
      actorId: actorId ?? null,
    };
  }

  /** One request's approval chain for reading (see requestChain), from its bundle as exported now. */
  async chain(actor: Actor, requestId: string): Promise<RequestChain> {
    // Read as the bundle is, without its transparency proofs: a reading view signs no checkpoint.
    const bundle = await this.signedBundle(actor, requestId);
    const credentialIds = bundle.events
      .map((event) => (event.data.evidence as { credentialId?: unknown } | undefined)?.credentialId)
      .filter((id): id is string => typeof id === 'string');
    const [usernames, authenticatorNames] = await Promise.all([
      usernamesOf(this.dataSource, [
        bundle.request.requesterId,
        ...bundle.events.map((event) => event.actorId),
      ]),
      authenticatorNamesOf(this.dataSource, credentialIds),
    ]);
    const { rpId, origins } = this.config.webauthn;
    return requestChain(bundle, { relyingParty: { rpId, origins }, usernames, authenticatorNames });
  }

  /**
   * Streams a signed export with an `audit.export` step-up whose subject is `audit` and params the call less
   * stepUp. Filters and step-up are checked before `open(format)` is called, so a refusal sends no byte; the
   * export is audited either way (`audit.exported` or `audit.export-failed`) and a failure is rethrown.
   */
  async export(actor: Actor, call: AuditExportCall, open: (format: ExportFormat) => Writable): Promise<void> {
    const { stepUp: _stepUp, ...params } = call;
    const filters = normaliseAuditFilters(call.filters ?? {});
    const evidence = await this.stepUp.verifyFor(actor, 'audit.export', 'audit', call);

    const request: ExportCallRecord = { format: call.format, filters, params };
    // The audit.exported event is committed when the manifest is signed, before the manifest line is written:
    // no verifiable export leaves without its audit event. The export ends at the chain head it read first,
    // so this event is never part of the export it records.
    const signer = signAuditManifest(this.connectors.signingKeys);
    let recorded = false;
    const signManifest: ManifestSigner = async (manifestBody) => {
      const signature = await signer(manifestBody);
      await this.recordExport(actor, evidence, request, { manifest: { ...manifestBody, ...signature } });
      recorded = true;
      return signature;
    };

    try {
      await streamAuditExport({
        source: this.exportSource(),
        format: call.format,
        filters,
        out: open(call.format),
        ...this.signing(actor),
        signManifest,
      });
    } catch (error) {
      if (!recorded) {
        await this.recordExport(actor, evidence, request, { error }).catch((failure: unknown) =>
          this.logger.error(`Failed audit export by ${actor.username} not audited: ${String(failure)}`),
        );
      }
      throw error;
    }
  }

  /** One request's approval chain, signed: verify offline with verifyBundle or `cli audit verify`. */
  async bundle(actor: Actor, requestId: string): Promise<RequestBundle> {
    const bundle = await this.signedBundle(actor, requestId);
    return { ...bundle, transparency: await this.transparencyOf(bundle) };
  }

  private async signedBundle(actor: Actor, requestId: string): Promise<RequestBundle> {
    const bundle = await buildRequestBundle(this.dataSource, requestId, this.signing(actor));
    if (!bundle) throw new DomainError(ErrorCode.REQUEST_NOT_FOUND, `No request ${requestId}`);
    return bundle;
  }

  /**
   * The bundle's events proven in a signed checkpoint of the Merkle tree (issue 22): the tree catches up to
   * the chain first, so it holds every event the bundle read.
   */
  private async transparencyOf(bundle: RequestBundle): Promise<BundleTransparency | undefined> {
    const origin = logOriginOf(this.config.webauthn.origins);
    const lastSeq = bundle.events.at(-1)?.seq ?? 0;
    let checkpoint = await issueCheckpoint(this.dataSource, this.connectors.signingKeys, origin);
    // The worker may be integrating at this moment (one sequencer at a time): give it a moment to finish.
    for (let attempt = 0; attempt < 5 && checkpoint && checkpoint.size < lastSeq; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      checkpoint = await issueCheckpoint(this.dataSource, this.connectors.signingKeys, origin);
    }
    // Without a checkpoint that holds every event, the bundle goes without proofs rather than with some.
    if (!checkpoint || checkpoint.size < lastSeq) return undefined;
    const proofs = [];
    for (const event of bundle.events) {
      const { proof } = await inclusionOf(this.dataSource, event.seq, checkpoint.size);
      proofs.push({ seq: event.seq, proof });
    }
    return { checkpoint: checkpoint.note, proofs };
  }

  /** The public keys of the audit signing key (current and retired) that verifiers pin with `--jwks`. */
  async publicJwks() {
    return { keys: await this.connectors.signingKeys.publicJwks('audit') };
  }

  /**
   * The driver's pg pool, not the DataSource: an export runs a thousand page queries, and TypeORM's query path
   * holds on to enough per query to add ~50 MB to the broker's peak RSS over a million events (bench `export`).
   * Same pool, same runtime role; the DataSource when the driver has no pool (another driver in a test).
   */
  private exportSource(): AuditSource {
    const pool = (this.dataSource.driver as { master?: AuditSource }).master;
    return pool ?? this.dataSource;
  }

  private signing(actor: Actor): BundleSigning {
    return {
      signManifest: signAuditManifest(this.connectors.signingKeys),
      exporter: actor.id,
      rpId: this.config.webauthn.rpId,
      origins: this.config.webauthn.origins,
    };
  }

  /** Audits the export: `audit.exported` with what its manifest signs, or `audit.export-failed`. */
  private async recordExport(
    actor: Actor,
    evidence: StepUpEvidence,
    request: ExportCallRecord,
    outcome: { manifest: ExportManifest } | { error: unknown },
  ): Promise<void> {
    const data = {
      format: request.format,
      filters: request.filters,
      // The step-up digest covers these exact parameters, so a reader can recompute it.
      params: JSON.parse(JSON.stringify(request.params)) as unknown,
      evidence: evidenceForAudit(evidence),
    };
    const subject = { actorId: actor.id, subjectType: 'audit', subjectId: 'audit' };
    await this.dataSource.transaction((manager) => {
      if (!('manifest' in outcome)) {
        const error = outcome.error instanceof Error ? outcome.error.message : String(outcome.error);
        const failed = { ...data, error };
        return appendAuditEvent(manager, { ...subject, action: AuditAction.AuditExportFailed, data: failed });
      }
      const { count, firstSeq, lastSeq, lastHash, eventsDigest, chainHead, kid, jws } = outcome.manifest;
      const manifest = { count, firstSeq, lastSeq, lastHash, eventsDigest, chainHead, kid, jws };
      return appendAuditEvent(manager, {
        ...subject,
        action: AuditAction.AuditExported,
        data: { ...data, manifest },
      });
    });
  }
}
