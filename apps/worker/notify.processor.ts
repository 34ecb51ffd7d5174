import { OnWorkerEvent, Processor, WorkerHost } from '@nestjs/bullmq';
import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import type { Job } from 'bullmq';
import { Redis } from 'ioredis';
import { APP_CONFIG, type AppConfig } from '../../libs/config/config.js';
import { JobName, QueueName, type JobPayloads } from '../../libs/jobs/jobs.js';
import { redisOptionsFromUrl } from '../../libs/jobs/jobs.module.js';
import { requestEventsChannel } from '../../libs/jobs/request-events.js';
import { Metrics } from '../../libs/metrics/metrics.js';
import { NotifyService } from '../../libs/notify/notify.service.js';
import { assertHandlesEveryJob, dispatch, type JobHandlers } from './job-handlers.js';

type DeliverJob = Job<JobPayloads[JobName.DeliverNotification]>;

/** Sends one notification per job; BullMQ retries with backoff (NOTIFY_ATTEMPTS, NOTIFY_BACKOFF_MS). */
@Processor(QueueName.Notify, { concurrency: 8, lockDuration: 10_000, stalledInterval: 5_000 })
export class NotifyProcessor extends WorkerHost {
  private readonly logger = new Logger(NotifyProcessor.name);
  private readonly handlers: JobHandlers = {
    [JobName.DeliverNotification]: (job) => this.deliver(job as DeliverJob),
  };

  constructor(
    private readonly notify: NotifyService,
    private readonly metrics: Metrics,
  ) {
    super();
    assertHandlesEveryJob(QueueName.Notify, this.handlers);
  }

  @OnWorkerEvent('error')
  onWorkerError(error: Error): void {
    this.logger.warn(`Worker connection: ${error.message}`);
  }

  process(job: Job): Promise<unknown> {
    return dispatch(QueueName.Notify, this.handlers, job);
  }

  /** One attempt, counted in jit_notifications_total; a retry throws so that BullMQ backs off and runs it again. */
  private async deliver(job: DeliverJob): Promise<unknown> {
    const { channel, outcome, error } = await this.notify.deliver(job.data.deliveryId, job.attemptsMade + 1);
    if (outcome !== 'skipped') this.metrics.notifications.inc({ channel, result: outcome });
    if (outcome === 'retry') throw error;
    return { channel, outcome };
  }
}

// Request events within this long of the first share one scan: a burst of revocations (one event each) costs
// a scan, not one transaction per event.
const EVENT_COALESCE_MS = 100;

/**
 * Runs NotifyService.scan within EVENT_COALESCE_MS of a request event (the Redis pub/sub the live updates
 * use) and at least every NOTIFY_POLL_INTERVAL_MS, so a lost wake-up costs latency only. Scans never overlap
 * in a process; across workers the cursor's row lock decides.
 */
@Injectable()
export class NotifyScanner implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('NotifyScanner');
  private timer: NodeJS.Timeout | undefined;
  private subscriber: Redis | undefined;
  private running: Promise<void> | null = null;
  private soon: NodeJS.Timeout | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly notify: NotifyService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => this.wake(), this.config.notify.pollIntervalMs);
    this.timer.unref();
    this.subscriber = new Redis({
      ...redisOptionsFromUrl(this.config.redisUrl, this.config.redisSentinel),
      maxRetriesPerRequest: null,
    });
    this.subscriber.on('error', () => undefined);
    this.subscriber.on('message', () => this.wakeSoon());
    this.subscriber.subscribe(requestEventsChannel(this.config.queuePrefix)).catch((error: unknown) => {
      this.logger.warn(`No wake-ups from request events (polling only): ${String(error)}`);
    });
    this.wake();
  }

  /** A wake-up after EVENT_COALESCE_MS, shared by every event until then. */
  private wakeSoon(): void {
    if (this.soon || this.stopped) return;
    this.soon = setTimeout(() => {
      this.soon = undefined;
      this.wake();
    }, EVENT_COALESCE_MS);
  }

  /** Coalesces wake-ups: one scan at a time, one more after it when woken meanwhile. */
  wake(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.notify
      .scan()
      .then(() => undefined)
      .catch((error: unknown) => this.logger.warn(`Notification scan failed: ${String(error)}`))
      .finally(() => {
        this.running = null;
        if (this.again) {
          this.again = false;
          this.wake();
        }
      });
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.soon);
    // disconnect, not quit: quit would wait for a Redis that is down.
    this.subscriber?.disconnect();
    await this.running;
  }
}
