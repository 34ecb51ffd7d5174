import { LoggerModule } from 'nestjs-pino';
import type { AppConfig } from '../config/config.js';

/** Structured JSON logs (pino); credentials and cookies in headers never reach them. */
export function loggerModule(config: AppConfig) {
  return LoggerModule.forRoot({
    pinoHttp: {
      level: config.logLevel,
      redact: ['req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]'],
      autoLogging: config.env !== 'test',
    },
  });
}
