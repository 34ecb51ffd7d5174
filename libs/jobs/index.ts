export * from './job-producer.js';
export * from './jobs.js';
export * from './jobs.module.js';
