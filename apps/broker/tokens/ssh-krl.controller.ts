import { Controller, Get, Header, StreamableFile } from '@nestjs/common';
import { ConnectorRegistry } from '../../../libs/elevation/connector-registry.js';
import { Public } from '../auth/public.decorator.js';

/** What SSH hosts fetch: the user CA to trust (TrustedUserCAKeys) and the KRL of revoked certificates (RevokedKeys). */
@Controller('api/ssh')
export class SshKrlController {
  constructor(private readonly connectors: ConnectorRegistry) {}

  /** The binary OpenSSH KRL; hosts poll it, so it is never cached for long. */
  @Public()
  @Get('krl')
  @Header('Cache-Control', 'no-cache')
  async krl(): Promise<StreamableFile> {
    const krl = await this.connectors.ssh.revocationList();
    return new StreamableFile(krl, {
      type: 'application/octet-stream',
      disposition: 'attachment; filename="revoked_keys.krl"',
      length: krl.length,
    });
  }

  /** The CA public key(s) in OpenSSH format, one per line. */
  @Public()
  @Get('ca.pub')
  @Header('Content-Type', 'text/plain; charset=utf-8')
  @Header('Cache-Control', 'public, max-age=60')
  caPublicKey(): Promise<string> {
    return this.connectors.ssh.caPublicKeys();
  }
}
