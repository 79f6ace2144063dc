/**
 * Entry of a compose pool thread (ComposePool.ts): renders and signs report mails. The keys are
 * parsed once, when the thread starts; every result goes back as a transferred ArrayBuffer.
 */
import { parentPort, workerData } from "node:worker_threads"
import { type DkimSignerKey, type DkimSignerOptions, makeDkimSigner } from "./DkimSigner.js"
import { type RenderJob, renderAndSign } from "./ReportMailRender.js"

interface Init {
  readonly keys: ReadonlyArray<DkimSignerKey>
  readonly options: DkimSignerOptions
}

const init = workerData as Init
const signer = makeDkimSigner(init.keys, init.options)

parentPort?.on("message", (message: { readonly id: number; readonly job: RenderJob }) => {
  try {
    const raw = renderAndSign(message.job, signer)
    // A fresh, unpooled buffer: transferring a slice of Node's shared pool would detach the pool.
    const out = new Uint8Array(new ArrayBuffer(raw.length))
    out.set(raw)
    parentPort?.postMessage({ id: message.id, raw: out }, [out.buffer])
  } catch (e) {
    parentPort?.postMessage({ id: message.id, error: e instanceof Error ? e.message : String(e) })
  }
})
