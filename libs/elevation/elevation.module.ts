import { Module } from '@nestjs/common';
import { ConnectorRegistry } from './connector-registry.js';
import { PolicyService } from './policy.service.js';
import { RequestsService } from './requests.service.js';
import { RevocationService } from './revocation.service.js';

/** The elevation core shared by broker and worker; needs ConfigModule, DatabaseModule and JobsModule. */
@Module({
  providers: [PolicyService, ConnectorRegistry, RequestsService, RevocationService],
  exports: [PolicyService, ConnectorRegistry, RequestsService, RevocationService],
})
export class ElevationModule {}
