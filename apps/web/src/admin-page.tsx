// `/admin`: the policy — versions in force with who loaded them and when, a diff between two versions, and a
// reload that shows the validation errors with file and line. People and access have their own pages
// (admin-people-page.tsx, admin-access-page.tsx); every admin page carries the stuck-revocation banner.
import { useEffect, useId, useState, type ReactNode } from 'react';
import { api, type Me } from './api';
import { RevocationBanner } from './admin-revocations';
import { ErrorMessage, Notice } from './messages';
import { diffLines, policyLines, withContext, type DiffRow } from './policy-diff';
import { postWithBoundStepUp } from './step-up';
import { formatTime } from './time';
import { useAction, useApiGet } from './use-api';

/** Renders `children` for an admin, a short refusal for anyone else (the broker refuses them anyway). */
export function AdminOnly({ title, children }: { title: string; children: ReactNode }) {
  const me = useApiGet<Me>('/api/me');
  if (!me.data) return <ErrorMessage error={me.error} />;
  if (!me.data.roles.includes('admin')) {
    return (
      <section>
        <h1>{title}</h1>
        <p>This page is for admins.</p>
      </section>
    );
  }
  return <>{children}</>;
}

export function AdminPage({ me }: { me: Me }) {
  if (!me.roles.includes('admin')) {
    return (
      <section>
        <h1>Administration</h1>
        <p>This page is for admins.</p>
      </section>
    );
  }
  return (
    <>
      <h1>Administration</h1>
      <RevocationBanner />
      <PolicySection />
    </>
  );
}

interface PolicyActivation {
  hash: string;
  activatedAt: string;
  activatedBy: string;
}

function PolicySection() {
  const versions = useApiGet<{ inForce: string; items: PolicyActivation[] }>('/api/admin/policies');
  const users = useApiGet<{ items: Array<{ id: string; username: string }> }>('/api/admin/users?limit=200');
  const action = useAction();
  const [outcome, setOutcome] = useState<string | null>(null);
  const reload = () =>
    action.run(async () => {
      setOutcome(null);
      const loaded = await postWithBoundStepUp<{ hash: string; changed: boolean; entitlements: number }>(
        '/api/admin/policies/reload',
        'policy.reload',
        'policy',
        {},
      );
      setOutcome(
        loaded.changed
          ? `New policy in force (${loaded.entitlements} entitlements), hash ${loaded.hash}.`
          : 'The policy files have not changed; the version in force stays.',
      );
      versions.reload();
    });
  return (
    <section aria-labelledby="policy-heading">
      <h2 id="policy-heading">Policy</h2>
      <ErrorMessage error={versions.error} />
      {versions.data && (
        <p>
          In force: <code data-testid="policy-in-force">{versions.data.inForce}</code>
        </p>
      )}
      <p className="muted">
        Reload reads the policy directory again; an invalid file is refused (with its file and line below) and
        the current version stays.
      </p>
      <button type="button" onClick={() => void reload()} disabled={action.busy}>
        Reload policy with passkey
      </button>
      {action.error && (
        <div className="panel error" role="alert" data-testid="policy-errors">
          <p>The policy was refused:</p>
          <pre>{action.error}</pre>
        </div>
      )}
      <Notice>{outcome}</Notice>
      {versions.data && (
        <VersionHistory
          key={versions.data.items[0]?.hash ?? ''}
          items={versions.data.items.map((item) => ({
            ...item,
            activatedBy:
              users.data?.items.find((user) => user.id === item.activatedBy)?.username ?? item.activatedBy,
          }))}
          inForce={versions.data.inForce}
        />
      )}
    </section>
  );
}

function VersionHistory({ items, inForce }: { items: PolicyActivation[]; inForce: string }) {
  const id = useId();
  const hashes = [...new Set(items.map((item) => item.hash))];
  const [from, setFrom] = useState(hashes[1] ?? hashes[0] ?? '');
  const [to, setTo] = useState(hashes[0] ?? '');
  const option = (hash: string) => (
    <option key={hash} value={hash}>
      {hash.slice(0, 12)}
      {hash === inForce ? ' (in force)' : ''}
    </option>
  );
  return (
    <>
      <h3>Activations</h3>
      <table>
        <thead>
          <tr>
            <th scope="col">Version</th>
            <th scope="col">Loaded</th>
            <th scope="col">By</th>
          </tr>
        </thead>
        <tbody>
          {items.map((item, index) => (
            <tr key={`${item.hash}-${index}`}>
              <td data-label="Version">
                <code>{item.hash.slice(0, 12)}</code>
                {index === 0 && item.hash === inForce ? ' (in force)' : ''}
              </td>
              <td data-label="Loaded">{formatTime(item.activatedAt)}</td>
              <td data-label="By">{item.activatedBy}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h3>Compare two versions</h3>
      <div className="filters">
        <label htmlFor={`${id}-from`}>From</label>
        <select id={`${id}-from`} value={from} onChange={(event) => setFrom(event.target.value)}>
          {hashes.map(option)}
        </select>
        <label htmlFor={`${id}-to`}>To</label>
        <select id={`${id}-to`} value={to} onChange={(event) => setTo(event.target.value)}>
          {hashes.map(option)}
        </select>
      </div>
      {from && to && <PolicyDiff from={from} to={to} />}
    </>
  );
}

function PolicyDiff({ from, to }: { from: string; to: string }) {
  const [lines, setLines] = useState<DiffRow[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    setLines(null);
    const load = (hash: string) => api.get<{ content: unknown }>(`/api/admin/policies/${hash}`);
    Promise.all([load(from), load(to)])
      .then(([before, after]) => {
        if (live)
          setLines(withContext(diffLines(policyLines(before.content), policyLines(after.content)), 3));
      })
      .catch((caught: unknown) => live && setError(String((caught as Error).message ?? caught)));
    return () => {
      live = false;
    };
  }, [from, to]);
  if (error) return <ErrorMessage error={error} />;
  if (!lines) return <p>Loading the diff…</p>;
  const changed = lines.filter((line) => line.kind === 'added' || line.kind === 'removed').length;
  return (
    <>
      <p>{changed === 0 ? 'These versions are the same.' : `${changed} line(s) differ.`}</p>
      <pre className="diff" data-testid="policy-diff" tabIndex={0} aria-label="Policy diff">
        {lines.map((line, index) =>
          line.kind === 'gap' ? (
            <span key={index} className="diff-gap">
              {`  … ${line.skipped} unchanged line(s)\n`}
            </span>
          ) : (
            <span key={index} className={`diff-${line.kind}`}>
              {line.kind === 'added' ? '+ ' : line.kind === 'removed' ? '- ' : '  '}
              {line.text}
              {'\n'}
            </span>
          ),
        )}
      </pre>
    </>
  );
}
