// Preloaded (--import) into an app the bench starts with BENCH_WORKER_CPU_PROFILE / BENCH_BROKER_CPU_PROFILE
// (apps.ts): profiles the whole run into CPU_PROFILE_OUT (open in Chrome DevTools or speedscope). `node
// --cpu-prof` writes nothing here: the apps' shutdown hooks end the process by re-raising SIGTERM. This keeps a SIGTERM
// listener, so the re-raised signal lands here, writes the profile, then exits.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

const out = process.env.CPU_PROFILE_OUT;
if (out) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable', () => session.post('Profiler.start'));
  let signals = 0;
  process.on('SIGTERM', () => {
    signals += 1;
    if (signals < 2) return;
    session.post('Profiler.stop', (error, result) => {
      if (!error) writeFileSync(out, JSON.stringify(result.profile));
      process.exit(0);
    });
  });
}
