import type { ParseArgsConfig } from 'node:util'
import { parseDocument, type YAMLError } from 'yaml'
import { ConfigError } from './config-values.js'

/**
 * One set of option values from four sources: command-line flags, then POLLEN_* environment
 * variables, then a YAML file, then the embedded defaults (which the component applies to
 * what is left unset). No I/O: main.ts reads the file and the environment and passes them in.
 *
 * - YAML keys are the flag names without dashes (`cache-size: 20GiB`); a repeatable option
 *   takes a list (a single value also does), a boolean option true or false.
 * - Environment variables are `POLLEN_` + the name in upper snake case (POLLEN_CACHE_SIZE);
 *   a repeatable option's values are separated by commas; an empty variable counts as unset.
 * - A repeatable option's list comes whole from the one source that wins, never mixed.
 * - An unknown key in the file is an error, so that a typo is never ignored. An unknown POLLEN_*
 *   variable is only a warning (with the nearest option's name): an environment is shared with
 *   other programs, and Kubernetes adds POLLEN_SEED_SERVICE_HOST and the like for a Service.
 */

export type OptionTable = NonNullable<ParseArgsConfig['options']>
export type OptionValue = string | boolean | string[]

/** Where a value came from, other than a flag or a default. */
export type Origin = { kind: 'env'; name: string } | { kind: 'file'; path: string }

/** Keys set by the environment or the file, and where; undefined when there are none. */
export type Origins = Readonly<Record<string, Origin>> | undefined

export interface ConfigFile {
  /** The path as the user gave it, for error messages. */
  path: string
  text: string
}

export interface ConfigSources {
  env?: Readonly<Record<string, string | undefined>>
  file?: ConfigFile
}

export interface SourceRules {
  /** Options that only the command line may set (always `help` and `config`; also a subcommand's own flags). */
  flagOnly?: readonly string[]
  /** POLLEN_* variables the program reads that are not options (e.g. POLLEN_JOIN_TOKEN). */
  otherEnv?: readonly string[]
}

export interface Merged<V> {
  values: V
  origins: Origins
  /** One line for each POLLEN_* variable that names no option (ignored). */
  warnings: string[]
}

/** Largest configuration file accepted. */
export const MAX_CONFIG_FILE_BYTES = 1 << 20
/** A flat configuration has no use for YAML aliases beyond a few; this bounds alias expansion. */
const MAX_YAML_ALIASES = 8
/** The variable naming the configuration file when `--config` is not given. */
export const CONFIG_ENV = 'POLLEN_CONFIG'
const ALWAYS_FLAG_ONLY = ['help', 'config']

/** `cache-size` → `POLLEN_CACHE_SIZE`. */
export function envName(key: string): string {
  return `POLLEN_${key.toUpperCase().replaceAll('-', '_')}`
}

/** The key as the user wrote it: `--cache-size`, `POLLEN_CACHE_SIZE` or `cache-size in /etc/pollen/agent.yaml`. */
export function keyLabel(origins: Origins, key: string): string {
  const origin = origins?.[key]
  if (origin === undefined) return `--${key}`
  return origin.kind === 'env' ? origin.name : `${key} in ${origin.path}`
}

/**
 * The configuration file named by `--config FILE` (or `--config=FILE`), else by POLLEN_CONFIG;
 * undefined when neither is given or when help is asked for. `label` names the source for
 * errors about reading it. Throws ConfigError when the path is empty.
 */
export function configFilePath(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): { path: string; label: string } | undefined {
  let path: string | undefined
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (arg === '--') break
    if (arg === '-h' || arg === '--help') return undefined
    if (arg === '--config') {
      const next = argv[i + 1]
      // A missing value, or one that looks like a flag, is left to the argument parser to refuse.
      path = next === undefined || next.startsWith('-') ? undefined : next
    } else if (arg.startsWith('--config=')) {
      path = arg.slice('--config='.length)
      if (path === '') throw new ConfigError('config', 'give a file path')
    }
  }
  if (path !== undefined) return { path, label: '--config' }
  const fromEnv = env[CONFIG_ENV]?.trim()
  return fromEnv === undefined || fromEnv === '' ? undefined : { path: fromEnv, label: CONFIG_ENV }
}

/**
 * Merges the parsed flags with the environment and the file: for each option the flag's value
 * if set, else the environment's, else the file's, else it stays undefined. Throws ConfigError
 * for invalid YAML (naming the line), an unknown key or POLLEN_* variable, or a value of the
 * wrong type, each naming the key as the user wrote it.
 */
export function mergeSources<V extends Record<string, unknown>>(options: OptionTable, flags: V, sources: ConfigSources, rules: SourceRules = {}): Merged<V> {
  const flagOnly = new Set([...ALWAYS_FLAG_ONLY, ...(rules.flagOnly ?? [])])
  const settable = Object.keys(options).filter((k) => !flagOnly.has(k))
  const warnings: string[] = []
  const fromEnv = envLayer(options, settable, flagOnly, sources.env ?? {}, new Set([CONFIG_ENV, ...(rules.otherEnv ?? [])]), warnings)
  const fromFile = sources.file === undefined ? new Map<string, Layered>() : fileLayer(options, settable, flagOnly, sources.file)
  const values: Record<string, unknown> = { ...flags }
  const origins: Record<string, Origin> = {}
  for (const key of settable) {
    if (flags[key] !== undefined) continue
    const layered = fromEnv.get(key) ?? fromFile.get(key)
    if (layered === undefined) continue
    values[key] = layered.value
    origins[key] = layered.origin
  }
  return { values: values as V, origins: Object.keys(origins).length === 0 ? undefined : origins, warnings }
}

/**
 * Runs `build` on merged values; a ConfigError it raises about a key set by the environment or
 * the file is raised again naming the key as the user wrote it (POLLEN_CACHE_SIZE, not --cache-size).
 */
export function withOrigins<V, T>(merged: Merged<V>, build: (values: V) => T): T {
  try {
    return build(merged.values)
  } catch (err) {
    if (err instanceof ConfigError && err.label === `--${err.key}` && merged.origins?.[err.key] !== undefined) {
      throw new ConfigError(err.key, err.detail, keyLabel(merged.origins, err.key))
    }
    throw err
  }
}

interface Layered {
  value: OptionValue
  origin: Origin
}

function envLayer(
  options: OptionTable,
  settable: string[],
  flagOnly: Set<string>,
  env: Readonly<Record<string, string | undefined>>,
  otherEnv: Set<string>,
  warnings: string[],
): Map<string, Layered> {
  const byName = new Map(settable.map((k) => [envName(k), k]))
  const layer = new Map<string, Layered>()
  for (const [name, raw] of Object.entries(env)) {
    if (!/^POLLEN_[A-Z0-9_]+$/.test(name) || otherEnv.has(name)) continue
    const key = byName.get(name)
    if (key === undefined) {
      const flag = [...flagOnly].find((k) => envName(k) === name)
      if (flag !== undefined) throw new ConfigError(flag, `--${flag} can only be given on the command line`, name)
      const near = closest(name.slice('POLLEN_'.length).toLowerCase().replaceAll('_', '-'), settable)
      warnings.push(`ignoring ${name}: no option has this name${near === undefined ? '' : ` (did you mean ${envName(near)}?)`}`)
      continue
    }
    const text = raw?.trim() ?? ''
    if (text === '') continue
    const option = options[key]!
    let value: OptionValue = text
    if (option.type === 'boolean') {
      if (text !== 'true' && text !== 'false') throw new ConfigError(key, `"${text.slice(0, 100)}" must be true or false`, name)
      value = text === 'true'
    } else if (option.multiple === true) {
      value = text.split(',').map((s) => s.trim())
      if (value.includes('')) throw new ConfigError(key, 'has an empty item (separate values with single commas)', name)
    }
    layer.set(key, { value, origin: { kind: 'env', name } })
  }
  return layer
}

function fileLayer(options: OptionTable, settable: string[], flagOnly: Set<string>, file: ConfigFile): Map<string, Layered> {
  const fail = (message: string): never => {
    throw new ConfigError('config', message, file.path)
  }
  if (new TextEncoder().encode(file.text).length > MAX_CONFIG_FILE_BYTES) fail(`larger than ${MAX_CONFIG_FILE_BYTES / 1024 / 1024} MiB`)
  const doc = parseDocument(file.text, { version: '1.2', schema: 'core', merge: false, uniqueKeys: true, strict: true, prettyErrors: true })
  const problem = doc.errors[0] ?? doc.warnings[0]
  if (problem !== undefined) fail(yamlProblem(problem))
  let data: unknown
  try {
    data = doc.toJS({ mapAsMap: true, maxAliasCount: MAX_YAML_ALIASES })
  } catch (err) {
    fail((err as Error).message)
  }
  const layer = new Map<string, Layered>()
  if (data === null || data === undefined) return layer
  if (!(data instanceof Map)) return fail('must be a mapping of option names to values, like "cache-size: 20GiB"')
  const origin: Origin = { kind: 'file', path: file.path }
  for (const [rawKey, raw] of data as Map<unknown, unknown>) {
    const key = String(rawKey)
    const label = `${key} in ${file.path}`
    if (flagOnly.has(key)) throw new ConfigError(key, `--${key} can only be given on the command line`, label)
    if (!settable.includes(key)) {
      const near = closest(key.replace(/^-+/, '').toLowerCase(), settable)
      throw new ConfigError(key, `unknown key${near === undefined ? '' : ` (did you mean ${near}?)`}`, label)
    }
    layer.set(key, { value: yamlValue(options[key]!, key, raw, label), origin })
  }
  return layer
}

/** One line: "line 3, column 1: Map keys must be unique". */
function yamlProblem(problem: YAMLError): string {
  const first = problem.code === 'MULTIPLE_DOCS' ? 'holds more than one YAML document' : (problem.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '')
  const at = problem.linePos?.[0]
  return at === undefined ? first : `line ${at.line}, column ${at.col}: ${first}`
}

function yamlValue(option: OptionTable[string], key: string, raw: unknown, label: string): OptionValue {
  if (raw === null || raw === undefined) throw new ConfigError(key, 'has no value (give one, or leave the key out)', label)
  if (option.type === 'boolean') {
    if (typeof raw !== 'boolean') throw new ConfigError(key, 'must be true or false', label)
    return raw
  }
  const scalar = (v: unknown): string => {
    if (typeof v === 'string') return v
    if (typeof v === 'number' && Number.isFinite(v)) return String(v)
    throw new ConfigError(key, option.multiple === true ? 'must be a list of strings or numbers' : 'must be a string or a number', label)
  }
  if (option.multiple !== true) return scalar(raw)
  const list = Array.isArray(raw) ? raw.map(scalar) : [scalar(raw)]
  if (list.length === 0) throw new ConfigError(key, 'is an empty list (give values, or leave the key out)', label)
  return list
}

/** The name among `names` nearest to `name` if it is a near miss (a typo), else undefined. */
function closest(name: string, names: string[]): string | undefined {
  let best: string | undefined
  let bestDistance = Math.max(2, Math.floor(name.length / 4)) + 1
  for (const candidate of names) {
    const d = editDistance(name, candidate)
    if (d < bestDistance) [best, bestDistance] = [candidate, d]
  }
  return best
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const next = [i]
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min((row[j] ?? 0) + 1, (next[j - 1] ?? 0) + 1, (row[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    row = next
  }
  return row[b.length] ?? 0
}
