import { copyFile, mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import type { HostPort } from '../protocol/config-values.js'
import { defaultRegistryUrl } from '../protocol/reference.js'
import { MIRROR_TOKEN_HEADER } from './mirror-token.js'

export interface HostsFileResult {
  path: string
  action: 'created' | 'updated' | 'unchanged'
  /** Where the replaced file was copied, when one was replaced. */
  backup?: string
}

/** The mirror URL containerd should use for an agent listening on `listen`. */
export function mirrorUrl(listen: HostPort): string {
  const host = listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host === '::' ? '::1' : listen.host
  return `http://${host.includes(':') ? `[${host}]` : host}:${listen.port}`
}

/**
 * The hosts.toml for one registry (`_default` for every registry): the agent first, with pull
 * and resolve, and the registry itself as `server`, so containerd falls back to it when the
 * agent does not answer. `_default` names no server: containerd then uses the registry asked for.
 */
export function hostsToml(registry: string, mirror: string, mirrorToken?: string): string {
  const lines = ['# Written by pollen-agent configure-containerd: pull through the Pollen agent,', '# and fall back to the registry itself when the agent does not answer.']
  if (registry !== '_default') lines.push(`server = "${defaultRegistryUrl(registry)}"`)
  lines.push('', `[host."${mirror}"]`, '  capabilities = ["pull", "resolve"]')
  if (mirrorToken !== undefined) lines.push(`  [host."${mirror}".header]`, `    ${MIRROR_TOKEN_HEADER} = "${mirrorToken}"`)
  lines.push('')
  return lines.join('\n')
}

/**
 * Writes `<hostsDir>/<registry>/hosts.toml` for each registry (or `_default`). Idempotent: a
 * file that already says the same is left alone; a different one is copied to
 * `hosts.toml.pollen-backup-<time>` before it is replaced. Each write is atomic (temp + rename).
 */
export async function writeHostsFiles(
  hostsDir: string,
  registries: string[],
  mirror: string,
  options: { now?: Date; mirrorToken?: string } = {},
): Promise<HostsFileResult[]> {
  const now = options.now ?? new Date()
  const results: HostsFileResult[] = []
  for (const registry of registries) {
    const dir = join(hostsDir, registry)
    const path = join(dir, 'hosts.toml')
    const wanted = hostsToml(registry, mirror, options.mirrorToken)
    const existing = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined
      throw err
    })
    if (existing === wanted) {
      results.push({ path, action: 'unchanged' })
      continue
    }
    await mkdir(dir, { recursive: true })
    let backup: string | undefined
    if (existing !== undefined) {
      backup = `${path}.pollen-backup-${now.toISOString().replace(/[:.]/g, '-')}`
      await copyFile(path, backup)
    }
    const temp = join(dir, `.hosts.toml.${randomBytes(4).toString('hex')}.tmp`)
    // A file holding the mirror's token is for containerd (root) alone.
    await writeFile(temp, wanted, { mode: options.mirrorToken === undefined ? 0o644 : 0o600 })
    await rename(temp, path)
    results.push({ path, action: existing === undefined ? 'created' : 'updated', backup })
  }
  return results
}
