import {
  Body,
  Controller,
  Get,
  Header,
  HttpCode,
  Inject,
  Logger,
  Param,
  Post,
  Query,
  Res,
} from '@nestjs/common';
import type { Response } from 'express';
import { DataSource } from 'typeorm';
import { appendAuditEvent, toChainedEvent } from '../../../libs/audit/audit-log.js';
import { buildRequestBundle, type BundleSigning } from '../../../libs/audit/bundle.js';
import {
  auditPageQuery,
  normaliseAuditFilters,
  rowsOf,
  signAuditManifest,
  streamAuditExport,
} from '../../../libs/audit/export.js';
import {
  EXPORT_MEDIA_TYPES,
  type ExportFilters,
  type ExportFormat,
  type ExportManifest,
  type ManifestSigner,
} from '../../../libs/audit/manifest.js';
import { APP_CONFIG, type AppConfig } from '../../../libs/config/config.js';
import type { AuditEventEntity } from '../../../libs/db/index.js';
import { DomainError, ErrorCode } from '../../../libs/domain/errors.js';
import type { Actor } from '../../../libs/elevation/actor.js';
import { ConnectorRegistry } from '../../../libs/elevation/connector-registry.js';
import { StepUpService } from '../../../libs/identity/step-up.service.js';
import { evidenceForAudit, type StepUpEvidence } from '../../../libs/webauthn/evidence.js';
import { CurrentActor } from '../auth/current-actor.decorator.js';
import { Public } from '../auth/public.decorator.js';
import { paramsDigest } from '../auth/step-up-params.js';
import { UuidPipe } from '../errors/validation.js';
import { AuditExportDto, ListAuditEventsQuery } from './audit.dto.js';

const DEFAULT_PAGE_SIZE = 100;
/** No upper bound on seq for the event list: a page is read as it stands. */
const NO_HEAD = Number.MAX_SAFE_INTEGER;

/** Reading the trail: auditors, and admins who operate the broker. */
function requireAuditorOrAdmin(actor: Actor): void {
  if (!actor.roles.includes('auditor') && !actor.roles.includes('admin')) {
    throw new DomainError(ErrorCode.FORBIDDEN, 'Auditors and admins only');
  }
}

/**
 * Signed exports are the auditor's (DESIGN §9), not the admin's: the people who run the broker and decide who
 * holds which role do not also produce the evidence about it. An admin who needs one is given the auditor
 * role, which is itself a step-up-confirmed, audited change.
 */
function requireAuditor(actor: Actor): void {
  if (!actor.roles.includes('auditor')) throw new DomainError(ErrorCode.FORBIDDEN, 'Auditors only');
}

/** `20261123T140547Z`: a file-name-safe UTC time stamp. */
function fileStamp(date: Date): string {
  return date
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replace(/[-:]/g, '');
}

/** The audit trail over HTTP (DESIGN §9, §10): event list, signed export, request bundle, the audit key. */
@Controller()
export class AuditController {
  private readonly logger = new Logger(AuditController.name);

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly dataSource: DataSource,
    private readonly connectors: ConnectorRegistry,
    private readonly stepUp: StepUpService,
  ) {}

  /** Events as exported, in seq order, filtered; `{ items, nextCursor }` where the cursor is the last seq. */
  @Get('api/audit/events')
  async events(@CurrentActor() actor: Actor, @Query() query: ListAuditEventsQuery) {
    requireAuditorOrAdmin(actor);
    const { limit = DEFAULT_PAGE_SIZE, cursor, ...given } = query;
    const filters = normaliseAuditFilters(given);
    const { text, values } = auditPageQuery(filters, Number(cursor ?? 0), NO_HEAD, limit + 1);
    const rows = rowsOf(await this.dataSource.query(text, values)) as AuditEventEntity[];
    const items = rows.slice(0, limit).map(toChainedEvent);
    return { items, nextCursor: rows.length > limit ? String(items[items.length - 1].seq) : null };
  }

  /**
   * Streams a signed export (NDJSON, CSV or JSON) with an `audit.export` step-up whose subject is `audit` and
   * params this body less stepUp. Everything a client can get wrong is refused before the first byte; a
   * failure after it destroys the response, so the file is visibly truncated (no manifest), never silently.
   */
  @Post('api/audit/export')
  @HttpCode(200)
  async export(
    @CurrentActor() actor: Actor,
    @Body() body: AuditExportDto,
    @Res() response: Response,
  ): Promise<void> {
    requireAuditor(actor);
    const { stepUp, ...params } = body;
    const format = body.format;
    const filters = normaliseAuditFilters(body.filters ?? {});
    const evidence = await this.stepUp.verify(actor, stepUp as never, {
      action: 'audit.export',
      subjectId: 'audit',
      subjectDigest: paramsDigest(params),
    });

    const request = { format, filters, params };
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

    response.setHeader('Content-Type', EXPORT_MEDIA_TYPES[format]);
    response.setHeader(
      'Content-Disposition',
      `attachment; filename="audit-${fileStamp(new Date())}.${format}"`,
    );
    response.setHeader('Cache-Control', 'no-store');
    try {
      await streamAuditExport({
        source: this.dataSource,
        format,
        filters,
        out: response,
        ...this.signing(actor),
        signManifest,
      });
    } catch (error) {
      if (!recorded) {
        await this.recordExport(actor, evidence, request, { error }).catch((failure: unknown) =>
          this.logger.error(`Failed audit export by ${actor.username} not audited: ${String(failure)}`),
        );
      }
      if (!response.headersSent) {
        // Nothing sent yet: the error envelope goes out as JSON, not as an attachment.
        response.removeHeader('Content-Type');
        response.removeHeader('Content-Disposition');
        throw error;
      }
      this.logger.error(`Audit export by ${actor.username} failed midway: ${(error as Error).message}`);
      response.destroy();
    }
  }

  /** One request's approval chain, signed: verify offline with verifyBundle or `cli audit verify`. */
  @Get('api/audit/requests/:id/bundle')
  @Header('Cache-Control', 'no-store')
  async bundle(@CurrentActor() actor: Actor, @Param('id', UuidPipe) id: string) {
    requireAuditorOrAdmin(actor);
    const bundle = await buildRequestBundle(this.dataSource, id, this.signing(actor));
    if (!bundle) throw new DomainError(ErrorCode.REQUEST_NOT_FOUND, `No request ${id}`);
    return bundle;
  }

  /** The public keys of the audit signing key (current and retired) that verifiers pin with `--jwks`. */
  @Public()
  @Get('.well-known/audit-jwks.json')
  @Header('Cache-Control', 'public, max-age=60')
  async auditJwks() {
    return { keys: await this.connectors.signingKeys.publicJwks('audit') };
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
    request: { format: ExportFormat; filters: ExportFilters; params: Record<string, unknown> },
    outcome: { manifest: ExportManifest } | { error: unknown },
  ): Promise<void> {
    const data: Record<string, unknown> = {
      format: request.format,
      filters: request.filters,
      // The step-up digest covers these exact parameters, so a reader can recompute it.
      params: JSON.parse(JSON.stringify(request.params)) as unknown,
    };
    if ('manifest' in outcome) {
      const { count, firstSeq, lastSeq, lastHash, eventsDigest, chainHead, kid, signature } =
        outcome.manifest;
      data.manifest = { count, firstSeq, lastSeq, lastHash, eventsDigest, chainHead, kid, signature };
    } else {
      data.error = outcome.error instanceof Error ? outcome.error.message : String(outcome.error);
    }
    data.evidence = evidenceForAudit(evidence);
    await this.dataSource.transaction((manager) =>
      appendAuditEvent(manager, {
        actorId: actor.id,
        action: 'manifest' in outcome ? 'audit.exported' : 'audit.export-failed',
        subjectType: 'audit',
        subjectId: 'audit',
        data,
      }),
    );
  }
}
