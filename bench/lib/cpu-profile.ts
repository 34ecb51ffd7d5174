// Preloaded (--import) into an app the bench starts with BENCH_WORKER_CPU_PROFILE / BENCH_BROKER_CPU_PROFILE
// (apps.ts): profiles the whole run into CPU_PROFILE_OUT (open in Chrome DevTools or speedscope). `node
// --cpu-prof` writes nothing here: the apps' shutdown hooks end the process with process.exit() from a signal
// handler. This wraps process.exit: the in-process inspector session answers synchronously, so the profile is
// written before the process ends.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

const out = process.env.CPU_PROFILE_OUT;
if (out) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable', () => session.post('Profiler.start'));
  const exit = process.exit.bind(process);
  let written = false;
  const writeProfile = () => {
    if (written) return;
    written = true;
    session.post('Profiler.stop', (error, result) => {
      if (!error) writeFileSync(out, JSON.stringify(result.profile));
    });
  };
  process.exit = ((code?: number) => {
    writeProfile();
    return exit(code);
  }) as typeof process.exit;
  process.on('exit', writeProfile);
}
