import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import { parse } from 'yaml';
import { Metrics } from './metrics.js';
import { MetricsToken } from './metrics-token.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');

/** The `jit_` series an app exposes, without prom-client's process metrics. */
async function seriesOf(metrics: Metrics): Promise<string[]> {
  const all = await metrics.registry.getMetricsAsJSON();
  return all.map((metric) => metric.name).filter((name) => !/^jit_(broker|worker)_/.test(name));
}

describe('Metrics', () => {
  it('exposes each series from one app only, every grant state and approval result from 0', async () => {
    const broker = await seriesOf(new Metrics('broker'));
    const worker = await seriesOf(new Metrics('worker'));
    expect(broker.filter((name) => worker.includes(name))).toEqual([]);
    expect(worker.sort()).toEqual([
      'jit_notifications_total',
      'jit_revocation_lag_seconds',
      'jit_revocations_total',
    ]);
    const text = await new Metrics('broker').registry.metrics();
    expect(text).toMatch(/^jit_grants\{state="REVOKE_FAILED"\} 0$/m);
    expect(text).toMatch(/^jit_approvals_total\{result="refused"\} 0$/m);
  });

  it('is documented in docs/deploy.md, and docs/alerts.yaml names only series that exist', async () => {
    const names = [...(await seriesOf(new Metrics('broker'))), ...(await seriesOf(new Metrics('worker')))];
    const deploy = readFileSync(join(ROOT, 'docs/deploy.md'), 'utf8');
    for (const name of names) expect(deploy).toContain(`\`${name}\``);
    const rules = parse(readFileSync(join(ROOT, 'docs/alerts.yaml'), 'utf8')) as {
      groups: Array<{ rules: Array<{ alert: string; expr: string }> }>;
    };
    const used = rules.groups.flatMap((group) =>
      group.rules.flatMap((rule) => rule.expr.match(/jit_\w+/g) ?? []),
    );
    expect(used.length).toBeGreaterThan(5);
    for (const name of used) expect(names).toContain(name.replace(/_(bucket|sum|count)$/, ''));
  });
});

describe('MetricsToken', () => {
  it('accepts only `Bearer <token>`, and nothing when no token is set', () => {
    const token = new MetricsToken('a-metrics-token-of-16+');
    expect(token.accepts('Bearer a-metrics-token-of-16+')).toBe(true);
    for (const header of [
      undefined,
      '',
      'Bearer ',
      'Bearer a-metrics-token-of-16',
      'Basic a-metrics-token-of-16+',
    ])
      expect(token.accepts(header)).toBe(false);
    expect(new MetricsToken(null).accepts('Bearer ')).toBe(false);
    expect(new MetricsToken(null).accepts('Bearer null')).toBe(false);
  });
});
