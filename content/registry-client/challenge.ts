import { MAX_CHALLENGE_LENGTH } from './constants.js'

/** One authentication challenge of a `WWW-Authenticate` header (RFC 9110 §11.6.1). */
export interface Challenge {
  /** Lowercase: `bearer`, `basic`, … */
  scheme: string
  /** Parameters by lowercase name, values unquoted (`realm`, `service`, `scope`, `error`). */
  params: ReadonlyMap<string, string>
}

const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/
const MAX_PARAMS = 32

/**
 * Parses every challenge in `WWW-Authenticate` values (one header or several; one value may
 * list several challenges). Quoted strings may hold commas and backslash escapes. Never
 * throws: parsing stops at the first malformed challenge, and the ones before it are returned.
 */
export function parseChallenges(header: string | readonly string[] | undefined): Challenge[] {
  if (header === undefined) return []
  const values = typeof header === 'string' ? [header] : header
  const out: Challenge[] = []
  for (const value of values) {
    if (typeof value !== 'string' || value.length > MAX_CHALLENGE_LENGTH) continue
    out.push(...new ChallengeParser(value).all())
  }
  return out
}

/** The first challenge of a `WWW-Authenticate` value, or undefined when there is none or it is malformed. */
export function parseChallenge(value: string): Challenge | undefined {
  return parseChallenges(value)[0]
}

/** The challenge to answer: Bearer when offered, else Basic, else undefined. */
export function pickChallenge(header: string | readonly string[] | undefined): Challenge | undefined {
  const all = parseChallenges(header)
  return all.find((c) => c.scheme === 'bearer') ?? all.find((c) => c.scheme === 'basic')
}

class ChallengeParser {
  #i = 0
  constructor(readonly s: string) {}

  all(): Challenge[] {
    const out: Challenge[] = []
    for (;;) {
      this.#skip(/[\s,]/)
      if (this.#i >= this.s.length) return out
      const challenge = this.#challenge()
      if (challenge === undefined) return out
      out.push(challenge)
    }
  }

  #challenge(): Challenge | undefined {
    const scheme = this.#token()
    if (scheme === '') return undefined
    const params = new Map<string, string>()
    const afterScheme = this.#i
    this.#skip(/[ \t]/)
    if (this.#i === afterScheme) return this.#atListEnd() ? { scheme: scheme.toLowerCase(), params } : undefined
    if (this.#token68()) return { scheme: scheme.toLowerCase(), params }
    for (;;) {
      const start = this.#i
      const name = this.#token()
      this.#skip(/[ \t]/)
      if (name === '' || this.s[this.#i] !== '=') {
        // Not a parameter: the next challenge starts here (or the input is junk).
        this.#i = start
        return params.size > 0 || this.#atListEnd() ? { scheme: scheme.toLowerCase(), params } : undefined
      }
      this.#i++
      this.#skip(/[ \t]/)
      const value = this.s[this.#i] === '"' ? this.#quoted() : this.#token()
      if (value === undefined || params.size >= MAX_PARAMS) return undefined
      params.set(name.toLowerCase(), value)
      this.#skip(/[ \t]/)
      if (this.#i >= this.s.length) return { scheme: scheme.toLowerCase(), params }
      if (this.s[this.#i] !== ',') return undefined
      this.#skip(/[\s,]/)
    }
  }

  /** Consumes a token68 (`Basic dXNlcjpwYXNz`) when one follows; true if it did. */
  #token68(): boolean {
    const m = /^[A-Za-z0-9\-._~+/]+=*/.exec(this.s.slice(this.#i))
    if (m === null || !/^[ \t]*(?:,|$)/.test(this.s.slice(this.#i + m[0].length))) return false
    this.#i += m[0].length
    return true
  }

  #quoted(): string | undefined {
    let out = ''
    for (let i = this.#i + 1; i < this.s.length; i++) {
      const c = this.s[i]
      if (c === '\\') {
        i++
        if (i >= this.s.length) return undefined
        out += this.s[i]
      } else if (c === '"') {
        this.#i = i + 1
        return out
      } else out += c
    }
    return undefined
  }

  #token(): string {
    const start = this.#i
    while (this.#i < this.s.length && TCHAR.test(this.s[this.#i] ?? '')) this.#i++
    return this.s.slice(start, this.#i)
  }

  #skip(chars: RegExp): void {
    while (this.#i < this.s.length && chars.test(this.s[this.#i] ?? '')) this.#i++
  }

  #atListEnd(): boolean {
    return this.#i >= this.s.length || this.s[this.#i] === ','
  }
}
