import { InjectQueue } from '@nestjs/bullmq';
import { Controller, Get, Res } from '@nestjs/common';
import type { Queue } from 'bullmq';
import type { Response } from 'express';
import type { Redis } from 'ioredis';
import { DataSource } from 'typeorm';
import { withDeadline } from '../../../libs/deadline/deadline.js';
import { QueueName } from '../../../libs/jobs/jobs.js';
import { Public } from '../auth/public.decorator.js';

const CHECK_TIMEOUT_MS = 2000;

async function probe(check: () => Promise<unknown>): Promise<'up' | 'down'> {
  try {
    await withDeadline(check(), CHECK_TIMEOUT_MS, 'timeout');
    return 'up';
  } catch {
    return 'down';
  }
}

@Public()
@Controller('health')
export class HealthController {
  constructor(
    private readonly dataSource: DataSource,
    @InjectQueue(QueueName.Revocation) private readonly revocationQueue: Queue,
  ) {}

  /** The process is up. */
  @Get('live')
  live() {
    return { status: 'ok' };
  }

  /** PostgreSQL and Redis both answer (`SELECT 1`, `PING`: the cheapest round trip to each); 503 otherwise. */
  @Get('ready')
  async ready(@Res({ passthrough: true }) response: Response) {
    const [postgres, redis] = await Promise.all([
      probe(() => this.dataSource.query('SELECT 1')),
      probe(async () => (await this.queueClient()).ping()),
    ]);
    const ok = postgres === 'up' && redis === 'up';
    response.status(ok ? 200 : 503);
    return { status: ok ? 'ok' : 'unavailable', checks: { postgres, redis } };
  }

  /** BullMQ's client forwards to the ioredis instance it wraps (libs/jobs); its interface leaves out PING. */
  private async queueClient(): Promise<Pick<Redis, 'ping'>> {
    return (await this.revocationQueue.getBackend().client) as unknown as Pick<Redis, 'ping'>;
  }
}
