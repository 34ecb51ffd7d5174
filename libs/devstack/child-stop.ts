import type { ChildProcess } from 'node:child_process';

/**
 * An idempotent stop for `child`: SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited
 * (`exited`). Until then, the child is killed if this process exits first: it must not outlive it.
 */
export function stopperOf(
  child: ChildProcess,
  exited: Promise<unknown>,
  graceMs: number,
): () => Promise<void> {
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.on('exit', killOnExit);
  let stopping: Promise<void> | undefined;
  return () =>
    (stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
        child.kill('SIGTERM');
        await exited;
        clearTimeout(kill);
      }
      process.off('exit', killOnExit);
    })());
}
