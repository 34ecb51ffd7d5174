import { BullModule } from '@nestjs/bullmq';
import { InjectQueue } from '@nestjs/bullmq';
import { Injectable, Logger, Module, type DynamicModule, type OnModuleInit } from '@nestjs/common';
import type { Queue } from 'bullmq';
import type { RedisOptions } from 'bullmq';
import type { RedisSentinel } from '../config/config.js';
import { JobProducer } from './job-producer.js';
import { QueueName } from './jobs.js';
import { RequestEventPublisher } from './request-events.js';

/**
 * ioredis options from a redis:// or rediss:// URL, for every connection (queues, counters, pub/sub). With
 * `sentinel`, the master comes from the Sentinels and the URL gives only credentials, database and TLS.
 */
export function redisOptionsFromUrl(url: string, sentinel: RedisSentinel | null = null): RedisOptions {
  const options = redisEndpointOptions(url);
  if (sentinel === null) return options;
  const { host: _host, port: _port, ...shared } = options;
  return {
    ...shared,
    sentinels: sentinel.hosts.map((endpoint) => ({ ...endpoint })),
    name: sentinel.name,
    sentinelPassword: sentinel.password,
    // rediss:// speaks TLS to the master and to the Sentinels alike.
    ...(options.tls === undefined ? {} : { enableTLSForSentinelMode: true, sentinelTLS: {} }),
  };
}

function redisEndpointOptions(url: string): RedisOptions {
  const parsed = new URL(url);
  const database = parsed.pathname.replace(/^\//, '');
  return {
    host: parsed.hostname,
    port: parsed.port ? Number(parsed.port) : 6379,
    username: parsed.username ? decodeURIComponent(parsed.username) : undefined,
    password: parsed.password ? decodeURIComponent(parsed.password) : undefined,
    db: database ? Number(database) : 0,
    tls: parsed.protocol === 'rediss:' ? {} : undefined,
    // BullMQ workers block on Redis; they must not give up on a command while Redis restarts.
    maxRetriesPerRequest: null,
  };
}

/** Logs queue connection errors (Redis restarting) instead of BullMQ's raw console output. */
@Injectable()
class QueueErrorLogger implements OnModuleInit {
  private readonly logger = new Logger('Queues');

  constructor(
    @InjectQueue(QueueName.Revocation) private readonly revocation: Queue,
    @InjectQueue(QueueName.Lifecycle) private readonly lifecycle: Queue,
    @InjectQueue(QueueName.Maintenance) private readonly maintenance: Queue,
    @InjectQueue(QueueName.Notify) private readonly notify: Queue,
  ) {}

  onModuleInit(): void {
    for (const queue of [this.revocation, this.lifecycle, this.maintenance, this.notify]) {
      queue.on('error', (error: Error) => this.logger.warn(`Queue ${queue.name}: ${error.message}`));
    }
  }
}

/** The BullMQ connection and every queue of QueueName, plus the JobProducer and RequestEventPublisher. */
@Module({})
export class JobsModule {
  static forRoot(options: {
    redisUrl: string;
    redisSentinel?: RedisSentinel | null;
    prefix: string;
  }): DynamicModule {
    const queues = BullModule.registerQueue(...Object.values(QueueName).map((name) => ({ name })));
    return {
      module: JobsModule,
      global: true,
      imports: [
        BullModule.forRoot({
          connection: redisOptionsFromUrl(options.redisUrl, options.redisSentinel ?? null),
          prefix: options.prefix,
        }),
        queues,
      ],
      providers: [JobProducer, RequestEventPublisher, QueueErrorLogger],
      exports: [JobProducer, RequestEventPublisher, queues],
    };
  }
}
