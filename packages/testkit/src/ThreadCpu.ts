/**
 * CPU time of this process's threads, from Linux's /proc/self/task/<tid>/stat (utime + stime, in
 * clock ticks of 1/100 s). The benchmarks quote it beside wall time: on a shared machine one
 * thread's CPU is steadier than the wall clock, and it tells which thread does the work.
 * Elsewhere (no /proc) the figures are NaN or empty.
 */
import { readdirSync, readFileSync } from "node:fs"

export interface ThreadTimes {
  /** user + system, ms */
  readonly ms: number
  /** the system (kernel) part, ms */
  readonly systemMs: number
}

/** A thread's times; the main thread's tid is the process id. */
export const threadTimes = (tid: number | string = process.pid): ThreadTimes => {
  try {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8")
    // the command name (field 2) is in parentheses and may hold spaces: count from after it
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    const user = Number(fields[11]) * 10
    const system = Number(fields[12]) * 10
    return { ms: user + system, systemMs: system }
  } catch {
    return { ms: Number.NaN, systemMs: Number.NaN }
  }
}

/** CPU ms of the main thread alone. */
export const mainThreadMs = (): number => threadTimes(process.pid).ms

/** Every live thread's times by tid (a thread that has ended is no longer listed). */
export const allThreads = (): Map<string, ThreadTimes> => {
  const out = new Map<string, ThreadTimes>()
  try {
    for (const tid of readdirSync("/proc/self/task")) {
      const t = threadTimes(tid)
      if (!Number.isNaN(t.ms)) out.set(tid, t)
    }
  } catch {}
  return out
}
