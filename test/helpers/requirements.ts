import { accessSync, constants } from 'node:fs'
import { basename, delimiter, isAbsolute, join } from 'node:path'
import { describe } from 'vitest'

export type BinaryRequirement = { skip: false } | { skip: true; reason: string }

/** Debian package that provides a binary, for the install hint; defaults to the binary's own name. */
const PACKAGE_FOR_BINARY: Record<string, string> = {
  'docker-registry': 'docker-registry',
  containerd: 'containerd',
  ctr: 'containerd',
  skopeo: 'skopeo',
  openssl: 'openssl',
}

/**
 * Checks that every binary is executable, either as an absolute path or somewhere on PATH.
 * Returns `{ skip: false }` when all are present. When some are missing: throws if
 * `CI=true` (CI must fail, not silently skip), otherwise returns one human-readable reason
 * line naming the missing binaries and the apt-get command that installs them.
 */
export function requireBinaries(names: string[]): BinaryRequirement {
  const missing = names.filter((name) => !isExecutableOnPath(name))
  if (missing.length === 0) return { skip: false }
  const packages = [...new Set(missing.map((name) => PACKAGE_FOR_BINARY[basename(name)] ?? basename(name)))]
  const what = `${missing.join(', ')} not installed (apt-get install -y ${packages.join(' ')})`
  if (process.env.CI === 'true') throw new Error(`e2e prerequisites missing in CI: ${what}`)
  return { skip: true, reason: `skipping e2e: ${what}` }
}

/**
 * `describe(title, fn)` when the binaries are present, otherwise `describe.skip` plus a
 * single console.warn of the reason. Throws at collection time in CI (see requireBinaries).
 */
export function describeWithBinaries(names: string[], title: string, fn: () => void): void {
  const requirement = requireBinaries(names)
  if (requirement.skip) {
    console.warn(requirement.reason)
    describe.skip(title, fn)
    return
  }
  describe(title, fn)
}

function isExecutableOnPath(name: string): boolean {
  if (isAbsolute(name)) return isExecutable(name)
  if (name.includes('/')) return false
  const dirs = (process.env.PATH ?? '').split(delimiter).filter((dir) => dir !== '')
  return dirs.some((dir) => isExecutable(join(dir, name)))
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}
