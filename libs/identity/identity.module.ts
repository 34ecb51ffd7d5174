import { Module } from '@nestjs/common';
import { AuthenticatorsService } from './authenticators.service.js';
import { InvitesService } from './invites.service.js';
import { PasskeysService } from './passkeys.service.js';
import { SessionsService } from './sessions.service.js';
import { StepUpService } from './step-up.service.js';
import { UsersService } from './users.service.js';

const SERVICES = [
  SessionsService,
  PasskeysService,
  StepUpService,
  AuthenticatorsService,
  InvitesService,
  UsersService,
];

/** People and proof: invites, passkeys, sessions and request-bound step-up (DESIGN §5). */
@Module({ providers: SERVICES, exports: SERVICES })
export class IdentityModule {}
