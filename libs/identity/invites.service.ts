import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import type { Actor } from '../elevation/actor.js';
import { evidenceForAudit, type StepUpEvidence } from '../webauthn/evidence.js';
import {
  createInvite,
  ensureFirstAdminInvite,
  type CreatedInvite,
  type InviteInput,
  type InviteSettings,
} from './invites.js';

/** Admin-created one-time enrollment invites (the CLI uses the same functions in invites.ts). */
@Injectable()
export class InvitesService {
  private readonly settings: InviteSettings;

  constructor(
    private readonly dataSource: DataSource,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.settings = { publicUrl: config.http.publicUrl, ttlSeconds: config.inviteTtlSeconds };
  }

  /** Creates an invite on behalf of an admin whose `invite.create` step-up the caller verified. */
  create(actor: Actor, input: InviteInput, evidence: StepUpEvidence): Promise<CreatedInvite> {
    return this.dataSource.transaction((manager) =>
      createInvite(manager, this.settings, actor.id, input, evidenceForAudit(evidence)),
    );
  }

  /** The first-admin link while no admin holds a passkey; null once one does. */
  firstAdminInvite(): Promise<CreatedInvite | null> {
    return ensureFirstAdminInvite(this.dataSource, this.settings);
  }
}
