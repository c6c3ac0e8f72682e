import { mkdir } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { readTextIfPresent, writeFileAtomic } from '../../content/atomic-file.js'
import { ADMISSION_STATE_DIR } from './constants.js'

/** Format number written into every admission state file; other formats are ignored on load. */
export const STATE_FORMAT = 1

/** `<dataDir>/admission/<file>`. */
export function admissionStatePath(dataDir: string, file: string): string {
  return join(dataDir, ADMISSION_STATE_DIR, file)
}

/**
 * Returns the parsed JSON of a state file, or undefined when it does not exist or is not a
 * JSON object of format STATE_FORMAT. Throws on other I/O errors (permissions).
 */
export async function readStateFile(path: string): Promise<Record<string, unknown> | undefined> {
  const text = await readTextIfPresent(path)
  if (text === undefined) return undefined
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return undefined
  }
  if (!isRecord(value) || value.format !== STATE_FORMAT) return undefined
  return value
}

/** Writes `{ format: STATE_FORMAT, ...value }` atomically with mode 0600, creating the directory with mode 0700. */
export async function writeStateFile(path: string, value: Record<string, unknown>): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  await writeFileAtomic(path, `${JSON.stringify({ format: STATE_FORMAT, ...value })}\n`)
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
