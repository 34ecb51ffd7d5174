import { chmod, readFile, writeFile } from 'node:fs/promises';

/** A secret kept in a 0600 file: its trimmed content, or null when the file is missing or empty. */
export async function readSecretFile(file: string): Promise<string | null> {
  try {
    const stored = (await readFile(file, 'utf8')).trim();
    if (stored === '') return null;
    // Tighten a file someone loosened by hand.
    await chmod(file, 0o600);
    return stored;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/** Writes a secret to a file only its owner may read. */
export async function writeSecretFile(file: string, secret: string): Promise<void> {
  await writeFile(file, `${secret}\n`, { mode: 0o600 });
  // `mode` applies only when the file is created.
  await chmod(file, 0o600);
}
