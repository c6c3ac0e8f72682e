/** What the seed's command-line parsers share: strict parsing with safe messages, and the flags more than one command takes. */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { ScopePatternInvalidError, MAX_SCOPE_PATTERNS, parseScopePattern } from '../protocol/admission.js'
import { ConfigError, durationFlag } from '../protocol/config-values.js'
import { looksLikeSecret } from './admission/audit-log.js'
import { DEFAULT_JOIN_TOKEN_SCOPE } from './admission/constants.js'

export type Options = NonNullable<ParseArgsConfig['options']>

export function parse<O extends Options>(argv: string[], options: O, allowPositionals: boolean): ReturnType<typeof parseArgs<{ options: O; allowPositionals: boolean; strict: true }>> {
  try {
    return parseArgs({ args: argv, strict: true, allowPositionals, options })
  } catch (err) {
    const message = (err as Error).message
    throw new ConfigError('arguments', looksLikeSecret(message) ? 'unexpected argument (see --help)' : message)
  }
}

/** A ConfigError for a command or positional argument, which has no `--flag` to name in its message. */
export function argumentError(key: string, message: string): ConfigError {
  const err = new ConfigError(key, message)
  err.message = message
  return err
}

export function positiveDuration(key: string, value: string): number {
  const ms = durationFlag(key, value)
  if (!(ms > 0)) throw new ConfigError(key, `"${value}" must be longer than 0`)
  return ms
}

export function scopeFlag(values: string[] | undefined, key = 'scope', fallback: readonly string[] = DEFAULT_JOIN_TOKEN_SCOPE): string[] {
  const scope = values ?? [...fallback]
  if (scope.length > MAX_SCOPE_PATTERNS) throw new ConfigError(key, `at most ${MAX_SCOPE_PATTERNS} patterns`)
  for (const pattern of scope) {
    try {
      parseScopePattern(pattern)
    } catch (err) {
      if (err instanceof ScopePatternInvalidError) throw new ConfigError(key, err.message)
      throw err
    }
  }
  return scope
}
