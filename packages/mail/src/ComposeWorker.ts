/**
 * Entry of a compose pool thread (ComposePool.ts): encodes, renders and signs report mails. The keys
 * are parsed once, when the thread starts. Jobs come in batches (one message each) and go back the
 * same way: every mail of a batch in one transferred ArrayBuffer, with the offsets of each.
 */
import { parentPort, workerData } from "node:worker_threads"
import { type DkimSignerKey, type DkimSignerOptions, makeDkimSigner } from "./DkimSigner.js"
import { type ReportJob, renderReportAndSign } from "./ReportMailRender.js"

interface Init {
  readonly keys: ReadonlyArray<DkimSignerKey>
  readonly options: DkimSignerOptions
}

const init = workerData as Init
const signer = makeDkimSigner(init.keys, init.options)

parentPort?.on("message", (jobs: ReadonlyArray<{ readonly id: number; readonly job: ReportJob }>) => {
  const raws: Array<Buffer> = []
  const replies: Array<
    { readonly id: number; readonly end: number } | { readonly id: number; readonly error: string }
  > = []
  let end = 0
  for (const { id, job } of jobs) {
    try {
      const raw = renderReportAndSign(job, signer)
      raws.push(raw)
      end += raw.length
      replies.push({ id, end })
    } catch (e) {
      replies.push({ id, error: e instanceof Error ? e.message : String(e) })
    }
  }
  // A fresh, unpooled buffer: transferring a slice of Node's shared pool would detach the pool.
  const out = new Uint8Array(new ArrayBuffer(end))
  let at = 0
  for (const raw of raws) {
    out.set(raw, at)
    at += raw.length
  }
  parentPort?.postMessage({ replies, buffer: out.buffer }, [out.buffer])
})
