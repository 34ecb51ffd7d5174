// The "Ask for access" form on `/`: each refusal is told in words next to the field to change (a cool-down
// counts down), focus moves to that field, and the confirmation of the last filing clears on the next edit.
import { useEffect, useId, useState, type FormEvent, type ReactNode } from 'react';
import { api, type Activation, type ElevationRequest, type Entitlement } from './api';
import { Countdown } from './countdown';
import { requestProblem, type FormProblem, type RequestField } from './form-problems';
import { serverNow, useServerNow } from './live';
import { ErrorMessage, Notice } from './messages';
import { postWithBoundStepUp } from './step-up';
import { useAction } from './use-api';

type Values = {
  minutes: string;
  justification: string;
  ticket: string;
  sshPublicKey: string;
  startAt: string;
};

interface ControlProps {
  id: string;
  'aria-invalid': true | undefined;
  'aria-describedby': string | undefined;
}

/** A labelled control with its problem, in words, right below it (WCAG 3.3.1, 3.3.3). */
function Field({
  baseId,
  name,
  label,
  problem,
  children,
}: {
  baseId: string;
  name: RequestField;
  label: ReactNode;
  problem: FormProblem | null;
  children: (control: ControlProps) => ReactNode;
}) {
  const id = `${baseId}-${name}`;
  const mine = problem?.field === name ? problem : null;
  return (
    <>
      <label htmlFor={id}>{label}</label>
      {children({
        id,
        'aria-invalid': mine ? true : undefined,
        'aria-describedby': mine ? `${id}-error` : undefined,
      })}
      {mine && <FieldProblem id={`${id}-error`} name={name} problem={mine} />}
    </>
  );
}

function FieldProblem({ id, name, problem }: { id: string; name: RequestField; problem: FormProblem }) {
  const now = useServerNow();
  return (
    <p className="error field-error" id={id} data-field-error={name}>
      {problem.message}
      {problem.retryAt !== undefined && (
        <>
          {' '}
          <Countdown until={problem.retryAt} now={now} />.
        </>
      )}
    </p>
  );
}

/** The body of POST /api/requests for what the form holds: only fields with a value. */
function requestBody(entitlement: Entitlement, values: Values): Record<string, unknown> {
  const defaultMinutes = Math.min(60, Math.max(1, Math.floor(entitlement.maxDurationSeconds / 60)));
  // For break-glass this object is also what the step-up signs.
  const body: Record<string, unknown> = {
    entitlementId: entitlement.id,
    durationSeconds: Math.round(Number(values.minutes || defaultMinutes) * 60),
  };
  if (values.justification.trim()) body.justification = values.justification.trim();
  if (values.ticket.trim()) body.ticket = values.ticket.trim();
  if (entitlement.connectorType === 'ssh' && values.sshPublicKey.trim())
    body.sshPublicKey = values.sshPublicKey.trim();
  // A scheduled start, in this browser's time zone; break-glass always starts now.
  if (values.startAt && !entitlement.breakGlass) body.notBefore = new Date(values.startAt).toISOString();
  return body;
}

/** Files it: a break-glass activates at once (with a step-up); anything else is filed. Returns the news. */
async function file(
  entitlement: Entitlement,
  body: Record<string, unknown>,
  onBreakGlass: (activation: Activation) => void,
): Promise<string> {
  if (entitlement.breakGlass) {
    onBreakGlass(await postWithBoundStepUp<Activation>('/api/requests', 'break-glass', entitlement.id, body));
    return 'Break-glass access is active; approvers have been told.';
  }
  const request = await api.post<ElevationRequest>('/api/requests', body);
  if (request.state === 'APPROVED')
    return 'Filed. It needs no approval: activate it below when you are ready.';
  return `Filed. It waits for ${request.approvalsRequired} approval${request.approvalsRequired === 1 ? '' : 's'}.`;
}

/** Moves focus to the field a problem concerns (the form-level line takes focus by itself). */
function useFocusProblem(baseId: string, problem: FormProblem | null): void {
  useEffect(() => {
    if (problem?.field) document.getElementById(`${baseId}-${problem.field}`)?.focus();
  }, [baseId, problem]);
}

const EMPTY: Values = { minutes: '', justification: '', ticket: '', sshPublicKey: '', startAt: '' };

/** What the form holds, the news of the last filing and the problem of the last attempt. */
function useFiling(baseId: string, onFiled: () => void, onBreakGlass: (activation: Activation) => void) {
  const [values, setValues] = useState<Values>(EMPTY);
  const [filed, setFiled] = useState<string | null>(null);
  const [problem, setProblem] = useState<FormProblem | null>(null);
  const action = useAction();
  useFocusProblem(baseId, problem);
  const set = (name: keyof Values) => (value: string) => setValues((old) => ({ ...old, [name]: value }));
  const submit = (entitlement: Entitlement) => {
    setFiled(null);
    setProblem(null);
    void action.run(async () => {
      try {
        setFiled(await file(entitlement, requestBody(entitlement, values), onBreakGlass));
        if (!entitlement.breakGlass) onFiled();
        setValues((old) => ({ ...old, justification: '', ticket: '', startAt: '' }));
      } catch (error) {
        setProblem(requestProblem(error, entitlement, serverNow()));
      }
    });
  };
  // The next edit is the next action: the last filing's news goes, and so does this field's problem.
  const edited = (event: FormEvent<HTMLFormElement>) => {
    setFiled(null);
    const target = (event.target as HTMLElement).id;
    if (problem?.field && (target === `${baseId}-${problem.field}` || target === `${baseId}-entitlement`))
      setProblem(null);
  };
  return { values, set, filed, problem, action, submit, edited };
}

export function RequestForm({
  entitlements,
  onFiled,
  onBreakGlass,
}: {
  entitlements: Entitlement[];
  onFiled: () => void;
  onBreakGlass: (activation: Activation) => void;
}) {
  const id = useId();
  const [entitlementId, setEntitlementId] = useState(entitlements[0].id);
  const entitlement = entitlements.find((item) => item.id === entitlementId) ?? entitlements[0];
  const { values, set, filed, problem, action, submit, edited } = useFiling(id, onFiled, onBreakGlass);
  const onSubmit = (event: FormEvent) => {
    event.preventDefault();
    submit(entitlement);
  };
  return (
    <form className="stacked" onSubmit={onSubmit} onChange={edited} noValidate>
      <Field baseId={id} problem={problem} name="entitlement" label="Entitlement">
        {(control) => (
          <select
            {...control}
            value={entitlement.id}
            onChange={(event) => setEntitlementId(event.target.value)}
          >
            {entitlements.map((item) => (
              <option key={item.id} value={item.id}>
                {item.title} ({item.id})
              </option>
            ))}
          </select>
        )}
      </Field>
      {entitlement.description && <p className="muted">{entitlement.description}</p>}
      <RequestFields baseId={id} entitlement={entitlement} values={values} set={set} problem={problem} />
      <TicketFields baseId={id} entitlement={entitlement} values={values} set={set} problem={problem} />
      <StartOrWarning baseId={id} entitlement={entitlement} values={values} set={set} problem={problem} />
      <div>
        <button type="submit" disabled={action.busy}>
          {entitlement.breakGlass ? 'Use break-glass' : 'Request access'}
        </button>
      </div>
      <ErrorMessage error={problem && !problem.field ? problem.message : action.error} focus />
      <Notice focus>{filed}</Notice>
    </form>
  );
}

/** Duration and justification. */
function RequestFields({
  baseId,
  entitlement,
  values,
  set,
  problem,
}: {
  baseId: string;
  entitlement: Entitlement;
  values: Values;
  set: (name: keyof Values) => (value: string) => void;
  problem: FormProblem | null;
}) {
  const maxMinutes = Math.max(1, Math.floor(entitlement.maxDurationSeconds / 60));
  const field = { baseId, problem };
  const optional = (needed: boolean) => (needed ? '' : ' (optional)');
  return (
    <>
      <Field {...field} name="minutes" label={`Duration in minutes (at most ${maxMinutes})`}>
        {(control) => (
          <input
            {...control}
            type="number"
            inputMode="numeric"
            min={1}
            max={maxMinutes}
            step={1}
            placeholder={String(Math.min(60, maxMinutes))}
            value={values.minutes}
            onChange={(event) => set('minutes')(event.target.value)}
          />
        )}
      </Field>

      <Field
        {...field}
        name="justification"
        label={`Justification${optional(entitlement.requires.justification)}`}
      >
        {(control) => (
          <textarea
            {...control}
            value={values.justification}
            onChange={(event) => set('justification')(event.target.value)}
            aria-required={entitlement.requires.justification}
            maxLength={2000}
            rows={3}
          />
        )}
      </Field>
    </>
  );
}

/** What a group of the form's fields needs: ids, the refusal to show, the entitlement and the values. */
interface FieldGroupProps {
  baseId: string;
  problem: FormProblem | null;
  entitlement: Entitlement;
  values: Values;
  set: (name: keyof Values) => (value: string) => void;
}

/** The ticket (its format in the policy's words, never the pattern) and, for SSH, the key to certify. */
function TicketFields({ baseId, problem, entitlement, values, set }: FieldGroupProps) {
  const field = { baseId, problem };
  const { ticketPattern, ticketHint } = entitlement.requires;
  const ticketLabel = (
    <>
      Ticket{ticketPattern ? '' : ' (optional)'}
      {ticketHint && <span className="muted"> — {ticketHint}</span>}
    </>
  );
  return (
    <>
      <Field {...field} name="ticket" label={ticketLabel}>
        {(control) => (
          <input
            {...control}
            value={values.ticket}
            onChange={(event) => set('ticket')(event.target.value)}
            aria-required={ticketPattern !== null}
            maxLength={200}
          />
        )}
      </Field>
      {entitlement.connectorType === 'ssh' && (
        <Field {...field} name="sshPublicKey" label="SSH public key to certify">
          {(control) => (
            <textarea
              {...control}
              value={values.sshPublicKey}
              onChange={(event) => set('sshPublicKey')(event.target.value)}
              aria-required
              rows={2}
              placeholder="ssh-ed25519 AAAA… you@laptop"
            />
          )}
        </Field>
      )}
    </>
  );
}

/** A scheduled start, or for break-glass the warning that it starts now. */
function StartOrWarning({ baseId, problem, entitlement, values, set }: FieldGroupProps) {
  const field = { baseId, problem };
  return (
    <>
      {!entitlement.breakGlass && (
        <Field {...field} name="startAt" label="Start at (optional; otherwise when you activate it)">
          {(control) => (
            <input
              {...control}
              type="datetime-local"
              step={60}
              value={values.startAt}
              onChange={(event) => set('startAt')(event.target.value)}
            />
          )}
        </Field>
      )}
      {entitlement.breakGlass && (
        <p className="warning">
          Break-glass is active at once, without approval. Approvers are told immediately and review its use
          afterwards. Your passkey confirms it.
        </p>
      )}
    </>
  );
}
