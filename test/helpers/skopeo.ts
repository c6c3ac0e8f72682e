import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** `skopeo copy [--all] docker://<src> dir:<dest>` over plain HTTP; resolves with skopeo's output, rejects with its stderr. */
export async function skopeoCopyToDir(src: string, dest: string, options: { all?: boolean; creds?: string; registryToken?: string; timeoutMs?: number } = {}): Promise<string> {
  const args = ['--insecure-policy', 'copy', '--src-tls-verify=false', '--retry-times', '0']
  if (options.all === true) args.push('--all')
  if (options.creds !== undefined) args.push('--src-creds', options.creds)
  if (options.registryToken !== undefined) args.push('--src-registry-token', options.registryToken)
  args.push(`docker://${src}`, `dir:${dest}`)
  const { stdout, stderr } = await run('skopeo', args, { timeout: options.timeoutMs ?? 120_000, maxBuffer: 16 * 1024 * 1024 })
  return stdout + stderr
}

/** sha256 of a file, as `sha256:<hex>`. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return `sha256:${hash.digest('hex')}`
}

/** The digests of the blob files in a skopeo `dir:` copy, each checked to hash to its name. */
export async function blobDigestsInDir(dir: string): Promise<Set<string>> {
  const out = new Set<string>()
  for (const name of await readdir(dir)) {
    if (!/^[0-9a-f]{64}$/.test(name)) continue
    const digest = await sha256File(join(dir, name))
    if (digest !== `sha256:${name}`) throw new Error(`${name} in ${dir} does not hash to its name`)
    out.add(digest)
  }
  return out
}
