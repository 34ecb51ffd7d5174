import { Body, Controller, Get, Header, HttpCode, Logger, Param, Post, Query, Res } from '@nestjs/common';
import type { Response } from 'express';
import { EXPORT_MEDIA_TYPES } from '../../../libs/audit/manifest.js';
import { DomainError, ErrorCode } from '../../../libs/domain/errors.js';
import type { Actor } from '../../../libs/domain/actor.js';
import { CurrentActor } from '../auth/current-actor.decorator.js';
import { Public } from '../auth/public.decorator.js';
import { UuidPipe } from '../errors/validation.js';
import { AuditExportService } from './audit-export.service.js';
import { AuditExportDto, ListAuditEventsQuery } from './audit.dto.js';

const DEFAULT_PAGE_SIZE = 100;

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

  constructor(private readonly audit: AuditExportService) {}

  /**
   * Events as exported, in seq order, filtered; `{ items, nextCursor, usernames, actorId }` where the cursor is
   * the last seq, `usernames` names the items' actors and `actorId` is the id the `actor` filter named.
   */
  @Get('api/audit/events')
  async events(@CurrentActor() actor: Actor, @Query() query: ListAuditEventsQuery) {
    requireAuditorOrAdmin(actor);
    const { limit = DEFAULT_PAGE_SIZE, cursor, actor: username, ...filters } = query;
    return this.audit.events(filters, { afterSeq: Number(cursor ?? 0), limit }, username);
  }

  /**
   * One request's approval chain for reading: its steps in order, each decision's step-up re-checked as the
   * offline verifier checks it (`binding.verified`), names for ids, grants with their revocation lag.
   */
  @Get('api/audit/requests/:id/chain')
  @Header('Cache-Control', 'no-store')
  async chain(@CurrentActor() actor: Actor, @Param('id', UuidPipe) id: string) {
    requireAuditorOrAdmin(actor);
    return this.audit.chain(actor, id);
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
    try {
      await this.audit.export(actor, body, (format) => {
        response.setHeader('Content-Type', EXPORT_MEDIA_TYPES[format]);
        response.setHeader(
          'Content-Disposition',
          `attachment; filename="audit-${fileStamp(new Date())}.${format}"`,
        );
        response.setHeader('Cache-Control', 'no-store');
        return response;
      });
    } catch (error) {
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
    return this.audit.bundle(actor, id);
  }

  /** The public keys of the audit signing key (current and retired) that verifiers pin with `--jwks`. */
  @Public()
  @Get('.well-known/audit-jwks.json')
  @Header('Cache-Control', 'public, max-age=60')
  async auditJwks() {
    return this.audit.publicJwks();
  }
}
