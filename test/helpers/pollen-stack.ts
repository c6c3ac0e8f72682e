import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import type { RunningRegistry } from './registry.js'

const run = promisify(execFile)
const AGENT_MAIN = fileURLToPath(new URL('../../dist/agent/main.js', import.meta.url))

/** Writes a Docker config.json with one registry's credentials; returns its path. */
export async function writeDockerConfig(dir: string, host: string, username: string, password: string): Promise<string> {
  const path = join(dir, `config-${username}-${Math.random().toString(36).slice(2, 8)}.json`)
  const auth = Buffer.from(`${username}:${password}`).toString('base64')
  await writeFile(path, JSON.stringify({ auths: { [`http://${host}`]: { auth } } }), { mode: 0o600 })
  return path
}

/** Seed flags for one upstream registry that is also the default `ns`. */
export function seedArgsFor(registry: RunningRegistry, dataDir: string, credentials?: string, extra: string[] = []): string[] {
  const args = ['--data', dataDir, '--upstream', `${registry.host}=${registry.url}`, '--default-ns', registry.host, ...extra]
  if (credentials !== undefined) args.push('--credentials', credentials)
  return args
}

/** Runs the built `pollen-agent configure-containerd …`; resolves with its stdout. */
export async function configureContainerd(args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [AGENT_MAIN, 'configure-containerd', ...args], { timeout: 30_000 })
  return stdout
}
