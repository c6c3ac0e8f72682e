import type { ChildProcess } from 'node:child_process'

const KILL_GRACE_MS = 5_000

/** How a child process ended. */
export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
  error?: Error
}

/** Resolves when `child` exits (or fails to start). */
export function exitOf(child: ChildProcess): Promise<Exit> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode })
  }
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }))
    child.once('error', (error) => resolve({ code: null, signal: null, error }))
  })
}

/** SIGTERM, then SIGKILL after 5 s; resolves once the child has exited. */
export async function stopProcess(child: ChildProcess, exited: Promise<Exit>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS)
  try {
    await exited
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Polls `probe` every `intervalMs` until it reports ready (returns undefined), the process
 * exits, or `timeoutMs` passes. `probe` returns a short description of why it is not ready
 * yet, or throws; the last such reason ends up in the timeout error.
 */
export async function waitUntilReady(probe: () => Promise<string | undefined>, exited: Promise<Exit>, timeoutMs: number, intervalMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let exit: Exit | undefined
  void exited.then((e) => (exit = e))
  let lastProblem = 'no answer yet'
  while (Date.now() < deadline) {
    if (exit) {
      const why = exit.error ? exit.error.message : `exited with code ${exit.code} signal ${exit.signal}`
      throw new Error(`process ${why} before becoming ready`)
    }
    try {
      const problem = await probe()
      if (problem === undefined) return
      lastProblem = problem
    } catch (err) {
      lastProblem = err instanceof Error ? err.message : String(err)
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
  throw new Error(`not ready within ${timeoutMs} ms (${lastProblem})`)
}
