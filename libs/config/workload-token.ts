/**
 * The CLI's `request --token-env NAME` (issue 21): the workload's OIDC token from the environment variable the
 * caller names (CI systems put it in one). Read here because only libs/config reads the environment.
 */
export function workloadTokenFromEnv(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env[name];
}
