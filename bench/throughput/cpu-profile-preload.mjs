// Preloaded into a pollen process with NODE_OPTIONS="--import …/cpu-profile-preload.mjs"
// (node 20 refuses --cpu-prof in NODE_OPTIONS). SIGUSR2 starts the V8 CPU profiler; the next
// SIGUSR2 stops it and writes $POLLEN_CPU_PROFILE_DIR/<label>-<pid>-<n>.cpuprofile, where
// <label> is the last line written to $POLLEN_CPU_PROFILE_DIR/label (or "profile").
import { Session } from 'node:inspector'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const dir = process.env.POLLEN_CPU_PROFILE_DIR
if (dir !== undefined) {
  const session = new Session()
  session.connect()
  let running = false
  let n = 0
  const stop = () => {
    running = false
    session.post('Profiler.stop', (err, result) => {
      if (err) return
      let label = 'profile'
      try { label = readFileSync(join(dir, 'label'), 'utf8').trim() || label } catch {}
      writeFileSync(join(dir, `${label}-${process.pid}-${++n}.cpuprofile`), JSON.stringify(result.profile))
    })
  }
  process.on('SIGUSR2', () => {
    if (running) return stop()
    running = true
    session.post('Profiler.enable', () => session.post('Profiler.setSamplingInterval', { interval: 500 }, () => session.post('Profiler.start')))
  })
  process.on('exit', () => { if (running) stop() })
}
